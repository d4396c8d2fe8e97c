// The dead letters of a topic: browse, inspect, redrive (one, selected, all), purge.

import { del, get, post, seg } from "./api.js";
import { dl, fmtNumber, h, jsonBlock, link, replace, route, table, timeEl } from "./dom.js";
import { announce, busy, confirmDialog, errorBox, field, infoDialog, notice, show } from "./ui.js";

const PAGE_SIZE = 25;

function lastError(e) {
  const err = e.last_error || {};
  return `${err.status ?? ""} ${err.reason || ""}`.trim() || "–";
}

function inspect(entry, session) {
  const err = entry.last_error || {};
  infoDialog(`Dead letter ${entry.id}`, h("div", {},
    dl([
      ["Message", session.has("message_lookup") && session.can("dlq")
        ? link(route("messages", entry.message_id), entry.message_id) : h("code", {}, entry.message_id)],
      ["Subscription", session.can("subscriptions") ? link(route("subscriptions", entry.subscription_id), entry.subscription_id) : entry.subscription_id],
      ["Attempts", fmtNumber(entry.attempts)],
      ["Published", timeEl(entry.published_at)],
      ["Failed", timeEl(entry.failed_at)],
      ["Last error", `${err.status ?? "no response"} ${err.reason || ""}`],
      ["Trace", entry.traceparent ? h("code", {}, entry.traceparent) : "none"],
    ]),
    err.body_excerpt ? [h("h3", {}, "Response excerpt"), h("pre", { class: "excerpt" }, err.body_excerpt)] : null,
    h("h3", {}, "Data"), jsonBlock(entry.data, "Message data")));
}

async function topicChoices() {
  try {
    return (await get("v1/topics", { limit: 1000 })).topics.map((t) => t.topic);
  } catch { return []; }
}

export async function render(main, { params, query, session }) {
  const topic = params.topic || "";
  const subscription = query.get("subscription") || "";
  const head = h("div", { class: "page-head" }, h("h1", {}, "Dead letters", topic ? [" of ", h("code", {}, topic)] : ""));
  const topicField = field("Topic", { name: "topic", required: true, value: topic, list: "dlq-topics", autocomplete: "off", spellcheck: "false" });
  const subField = field("Subscription", { name: "subscription", value: subscription, list: "dlq-subs", autocomplete: "off", spellcheck: "false", hint: "Empty: every subscription of the topic." });
  const topicsList = h("datalist", { id: "dlq-topics" });
  const subsList = h("datalist", { id: "dlq-subs" });
  const show_ = h("button", { type: "submit" }, "Show");
  const form = h("form", { class: "inline-form", "aria-label": "Choose a topic" }, topicField.wrap, subField.wrap, show_, topicsList, subsList);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const t = topicField.input.value.trim();
    if (!t) { topicField.error("Enter a topic."); topicField.input.focus(); return; }
    const target = route("dlq", t, { subscription: subField.input.value.trim() });
    if (location.hash === target) window.dispatchEvent(new HashChangeEvent("hashchange"));
    else location.hash = target;
  });
  main.append(head, form);
  if (session.can("subscriptions")) {
    topicChoices().then((names) => replace(topicsList, names.map((n) => h("option", { value: n }))));
    if (topic) {
      get("v1/subscriptions", { topic }).then((answer) =>
        replace(subsList, answer.subscriptions.map((s) => h("option", { value: s.id }))), () => {});
    }
  }
  if (!topic) {
    main.append(h("p", { class: "muted" }, "Choose a topic to see what gave up on it."));
    return null;
  }

  const status = h("div", { class: "status-slot", id: "dlq-status" });
  const count = h("p", { id: "dlq-count", "aria-live": "polite" });
  const listSlot = h("div", {});
  const filter = subscription ? { subscription } : {};
  const selected = new Set();
  const cursors = [null];
  let entries = [];
  let nextCursor = null;

  const redriveSelected = h("button", { type: "button", disabled: true }, "Redrive selected");
  const redriveAll = h("button", { type: "button" }, subscription ? `Redrive all of ${subscription}` : "Redrive all");
  const purge = h("button", { type: "button", class: "danger" }, subscription ? `Purge ${subscription}'s entries` : "Purge");
  const first = h("button", { type: "button", disabled: true }, "First page");
  const previous = h("button", { type: "button", disabled: true }, "Previous page");
  const next = h("button", { type: "button", disabled: true }, "Next page");

  function updateSelection() {
    redriveSelected.disabled = selected.size === 0;
    redriveSelected.textContent = selected.size ? `Redrive selected (${selected.size})` : "Redrive selected";
  }

  async function redrive(body, what) {
    try {
      const answer = await post(`v1/topics/${seg(topic)}/dlq/redrive`, body);
      show(status, notice(`Redriven ${answer.redriven} ${answer.redriven === 1 ? "entry" : "entries"} (${what}).`));
      selected.clear();
      cursors.length = 1;
      await load();
    } catch (exc) { show(status, errorBox(exc)); }
  }

  function row(entry) {
    const box = h("input", { type: "checkbox", id: `sel-${entry.id}`, checked: selected.has(entry.id) });
    box.addEventListener("change", () => { if (box.checked) selected.add(entry.id); else selected.delete(entry.id); updateSelection(); });
    const inspectButton = h("button", { type: "button", class: "small", "aria-label": `Inspect ${entry.message_id}` }, "Inspect");
    inspectButton.addEventListener("click", () => inspect(entry, session));
    const one = h("button", { type: "button", class: "small", "aria-label": `Redrive ${entry.message_id}` }, "Redrive");
    one.addEventListener("click", () => busy(one, () => redrive({ ids: [entry.id] }, `message ${entry.message_id}`)));
    return h("tr", { dataset: { entry: entry.id, message: entry.message_id } },
      h("td", {}, box, h("label", { for: `sel-${entry.id}`, class: "visually-hidden" }, `Select ${entry.message_id}`)),
      h("td", {}, timeEl(entry.failed_at)),
      h("th", { scope: "row" }, h("code", {}, entry.message_id)),
      h("td", {}, entry.subscription_id),
      h("td", { class: "num" }, fmtNumber(entry.attempts)),
      h("td", {}, lastError(entry)),
      h("td", { class: "row-actions" }, inspectButton, one));
  }

  async function load() {
    try {
      const [page, counted] = await Promise.all([
        get(`v1/topics/${seg(topic)}/dlq`, { ...filter, limit: PAGE_SIZE, cursor: cursors[cursors.length - 1] }),
        get(`v1/topics/${seg(topic)}/dlq/count`, filter),
      ]);
      entries = page.entries;
      nextCursor = page.next_cursor;
      count.textContent = `${fmtNumber(counted.count)} ${counted.count === 1 ? "entry" : "entries"}${subscription ? ` of ${subscription}` : ""}, page ${cursors.length}.`;
      const all = h("input", { type: "checkbox", id: "sel-all", "aria-label": "Select every entry on this page" });
      all.checked = entries.length > 0 && entries.every((e) => selected.has(e.id));
      all.addEventListener("change", () => {
        for (const e of entries) { if (all.checked) selected.add(e.id); else selected.delete(e.id); }
        for (const box of listSlot.querySelectorAll("tbody input[type=checkbox]")) box.checked = all.checked;
        updateSelection();
      });
      replace(listSlot, entries.length
        ? table(`Dead letters of ${topic}`, [all, "Failed", "Message", "Subscription", "Attempts", "Last error", "Actions"], entries.map(row), { captionHidden: true })
        : h("p", { class: "muted" }, "No dead letters here."));
      next.disabled = !nextCursor;
      previous.disabled = cursors.length <= 1;
      first.disabled = cursors.length <= 1;
      redriveAll.disabled = purge.disabled = counted.count === 0;
      updateSelection();
    } catch (exc) {
      replace(listSlot, errorBox(exc));
    }
  }

  redriveSelected.addEventListener("click", () => busy(redriveSelected, () => redrive({ ids: [...selected] }, "selected")));
  redriveAll.addEventListener("click", () => busy(redriveAll, async () => {
    const ok = await confirmDialog({ title: "Redrive every entry?", text: `Every dead letter of ${topic}${subscription ? ` for ${subscription}` : ""} goes back to the subscription that failed it.`, confirm: "Redrive all" });
    if (ok) await redrive(subscription ? { subscription } : {}, "all");
  }));
  purge.addEventListener("click", () => busy(purge, async () => {
    const ok = await confirmDialog({ title: "Purge dead letters?", text: `Every dead letter of ${topic}${subscription ? ` for ${subscription}` : ""} is deleted for good. This cannot be undone.`, confirm: "Purge", danger: true });
    if (!ok) return;
    try {
      const answer = await del(`v1/topics/${seg(topic)}/dlq`, filter);
      show(status, notice(`Purged ${answer.purged} ${answer.purged === 1 ? "entry" : "entries"}.`));
      selected.clear();
      cursors.length = 1;
      await load();
    } catch (exc) { show(status, errorBox(exc)); }
  }));
  next.addEventListener("click", () => busy(next, async () => { cursors.push(nextCursor); await load(); announce(`Page ${cursors.length}`); }));
  previous.addEventListener("click", () => busy(previous, async () => { cursors.pop(); await load(); announce(`Page ${cursors.length}`); }));
  first.addEventListener("click", () => busy(first, async () => { cursors.length = 1; await load(); announce("Page 1"); }));

  main.append(
    h("div", { class: "toolbar" }, redriveSelected, redriveAll, purge),
    status, count, listSlot,
    h("nav", { class: "pager", "aria-label": "Pages" }, first, previous, next));
  await load();
  return null;
}
