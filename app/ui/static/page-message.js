// One message: where it went, per subscription, with every attempt; resend.

import { get, post, seg } from "./api.js";
import { dl, fmtMs, h, jsonBlock, link, route, timeEl } from "./dom.js";
import { busy, errorBox, field, notice, show } from "./ui.js";

const STATE_LABELS = {
  pending: "pending", scheduled: "retry scheduled", in_flight: "in flight", delivered: "delivered",
  filtered: "filtered out", dead_lettered: "dead-lettered", parked: "parked",
};

function timeline(attempts) {
  if (!attempts || !attempts.length) return h("p", { class: "muted" }, "No attempts yet.");
  return h("ol", { class: "timeline" }, attempts.map((a) =>
    h("li", { class: a.outcome === "failed" ? "failed" : "succeeded" },
      h("div", {}, h("strong", {}, `Attempt ${a.attempt ?? "?"}`), " at ", timeEl(a.started_at),
        `: ${a.status ?? "no response"} ${a.reason || ""}`, a.duration_ms !== undefined ? `, ${fmtMs(a.duration_ms)}` : "",
        a.next_step ? ` → ${a.next_step}` : "",
        a.next_attempt_at ? h("span", {}, " (next at ", timeEl(a.next_attempt_at), ")") : ""),
      a.response_excerpt ? h("pre", { class: "excerpt" }, a.response_excerpt) : null)));
}

/** Deliveries as a list, whether the server sends an array or a map by subscription. */
function deliveriesOf(found) {
  const raw = found.deliveries ?? found.subscriptions ?? [];
  if (Array.isArray(raw)) return raw.map((d) => ({ ...d, subscription_id: d.subscription_id ?? d.subscription ?? d.id }));
  return Object.entries(raw).map(([sid, d]) => ({ ...d, subscription_id: sid }));
}

function delivery(messageId, d, session) {
  const status = h("div", { class: "status-slot" });
  const titleId = `delivery-${d.subscription_id}`;
  let resend = null;
  if (session.has("resend")) {
    resend = h("button", { type: "button" }, "Resend");
    resend.setAttribute("aria-describedby", titleId);
    resend.addEventListener("click", () => busy(resend, async () => {
      try {
        await post(`v1/messages/${seg(messageId)}/resend`, { subscription: d.subscription_id });
        show(status, notice(`Resent to ${d.subscription_id}: a new attempt series has started.`));
      } catch (exc) { show(status, errorBox(exc)); }
    }));
  }
  return h("section", { class: "card delivery", "aria-labelledby": titleId },
    h("div", { class: "card-head" },
      h("h3", { id: titleId }, link(route("subscriptions", d.subscription_id), d.subscription_id)),
      h("span", { class: `badge state-${d.state}` }, STATE_LABELS[d.state] || d.state || "unknown"),
      resend),
    d.next_attempt_at ? h("p", {}, "Next attempt at ", timeEl(d.next_attempt_at)) : null,
    timeline(d.attempts), status);
}

async function lookup(slot, id, session) {
  let found;
  try {
    found = await get(`v1/messages/${seg(id)}`);
  } catch (exc) {
    show(slot, exc.routeMissing
      ? h("p", { class: "alert warning" }, "Message lookup is not available on this server.")
      : errorBox(exc));
    return;
  }
  const deliveries = deliveriesOf(found);
  show(slot, h("div", {},
    h("section", { class: "card", "aria-labelledby": "msg-title" },
      h("h2", { id: "msg-title" }, "Message ", h("code", {}, found.id ?? id)),
      dl([
        ["Topic", found.topic ?? "–"],
        ["Published", timeEl(found.published_at)],
        ["Trace", found.traceparent ? h("code", {}, found.traceparent) : "none"],
        ["Headers", found.headers && Object.keys(found.headers).length ? jsonBlock(found.headers, "Message headers") : "none"],
      ]),
      h("h3", {}, "Data"), jsonBlock(found.data, "Message data")),
    h("h2", {}, "Deliveries"),
    deliveries.length
      ? deliveries.map((d) => delivery(found.id ?? id, d, session))
      : h("p", { class: "muted" }, "No subscription matched this message.")));
}

export async function render(main, { params, session }) {
  const id = field("Message id", { name: "message-id", required: true, value: params.id || "", autocomplete: "off", spellcheck: "false" });
  const submit = h("button", { type: "submit", class: "primary" }, "Look up");
  const slot = h("div", { id: "message-result" });
  const form = h("form", { class: "inline-form", role: "search", "aria-label": "Look up a message" }, id.wrap, submit);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = id.input.value.trim();
    if (!value) { id.error("Enter a message id."); id.input.focus(); return; }
    id.error("");
    const target = route("messages", value);
    if (location.hash === target) busy(submit, () => lookup(slot, value, session));
    else location.hash = target;
  });
  main.append(h("h1", {}, "Messages"),
    h("p", {}, "Where did a message go? Its state and every attempt, per subscription."),
    form, slot);
  if (params.id) await lookup(slot, params.id, session);
  return null;
}
