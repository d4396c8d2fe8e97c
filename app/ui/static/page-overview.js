// Overview: every topic with its subscriptions and figures, refreshing live.

import { get } from "./api.js";
import { fmtNumber, fmtRate, h, link, replace, route, table, timeEl } from "./dom.js";
import { errorBox } from "./ui.js";
import { RateTracker } from "./metrics.js";

const REFRESH_MS = 2000;
const MAX_PAGES = 20;

async function allTopics() {
  const topics = [];
  let cursor;
  for (let page = 0; page < MAX_PAGES; page += 1) {
    const answer = await get("v1/topics", { limit: 200, cursor });
    topics.push(...answer.topics);
    cursor = answer.next_cursor;
    if (!cursor) break;
  }
  return topics;
}

function stat(label, value, id) {
  return h("div", { class: "stat" }, h("span", { class: "stat-label" }, label),
    h("span", { class: "stat-value", id }, value));
}

function topicSection(topic, subs, rates, session) {
  const titleId = `topic-${topic.topic}`;
  const published = rates ? rates.published(topic.topic) : null;
  const delivered = rates ? rates.delivered(topic.topic) : null;
  const rows = topic.subscriptions.map((s) => {
    const def = subs.get(s.id);
    return h("tr", {},
      h("th", { scope: "row" }, link(route("subscriptions", s.id), s.id, { id: `sub-link-${s.id}` })),
      h("td", { class: "url" }, def ? def.url : "–"),
      h("td", {}, s.paused ? h("span", { class: "badge paused" }, "paused") : h("span", { class: "badge active" }, "active")),
      h("td", { class: "num" }, fmtNumber(s.backlog)),
      h("td", { class: "num" }, fmtNumber(s.in_flight)),
      h("td", { class: "num" }, fmtNumber(s.scheduled)),
      h("td", { class: "num" }, s.dlq && session.can("dlq")
        ? link(route("dlq", topic.topic, { subscription: s.id }), fmtNumber(s.dlq)) : fmtNumber(s.dlq)),
      h("td", { class: "num" }, fmtRate(rates ? rates.deliveredTo(s.id) : null)));
  });
  return h("section", { class: "card topic", "aria-labelledby": titleId, dataset: { topic: topic.topic } },
    h("div", { class: "card-head" },
      h("h2", { id: titleId }, topic.topic),
      h("div", { class: "links" },
        session.can("dlq") ? link(route("dlq", topic.topic), "Dead letters", { id: `dlq-link-${topic.topic}` }) : null,
        session.can("publish") ? link(route("publish", { topic: topic.topic }), "Publish", { id: `pub-link-${topic.topic}` }) : null)),
    h("div", { class: "stats" },
      stat("Backlog", fmtNumber(topic.backlog)),
      stat("In flight", fmtNumber(topic.in_flight)),
      stat("Scheduled", fmtNumber(topic.scheduled)),
      stat("Dead letters", fmtNumber(topic.dlq_count)),
      stat("Published", fmtRate(published)),
      stat("Delivered", fmtRate(delivered))),
    rows.length
      ? table(`Subscriptions of ${topic.topic}`,
        ["Subscription", "URL", "State", "Backlog", "In flight", "Scheduled", "Dead letters", "Delivered"],
        rows, { captionHidden: true })
      : h("p", { class: "muted" }, "No subscriptions: messages published here reach nobody."));
}

export async function render(main, { session }) {
  const live = h("input", { type: "checkbox", id: "live", checked: true });
  const updated = h("span", { class: "muted", id: "updated" });
  const content = h("div", { id: "topics" });
  const ratesNote = h("p", { class: "muted small" });
  main.append(
    h("div", { class: "page-head" },
      h("h1", {}, "Overview"),
      h("div", { class: "toolbar" },
        h("label", { class: "check" }, live, " Refresh live"), updated)),
    content, ratesNote);

  const tracker = new RateTracker();
  const metricsAllowed = !session.metricsNeedAdmin || session.can("admin");
  if (!metricsAllowed) ratesNote.textContent = "Rates need /metrics, which this hookline shows to admin keys only.";
  let timer = null;
  let stopped = false;
  let rates = null;

  async function refresh() {
    timer = null;
    try {
      const [topics, subList, fresh] = await Promise.all([
        allTopics(),
        get("v1/subscriptions"),
        metricsAllowed ? tracker.poll().catch(() => null) : null,
      ]);
      if (stopped) return;
      if (fresh) rates = fresh;
      const subs = new Map(subList.subscriptions.map((s) => [s.id, s]));
      const focusedId = document.activeElement && main.contains(document.activeElement) ? document.activeElement.id : null;
      replace(content, topics.length
        ? topics.map((t) => topicSection(t, subs, rates, session))
        : h("div", { class: "card" }, h("p", {}, "No topics yet. Publish a message or create a subscription, and it appears here.")));
      if (focusedId && document.getElementById(focusedId)) document.getElementById(focusedId).focus();
      replace(updated, "Updated ", timeEl(Date.now()));
    } catch (exc) {
      if (stopped) return;
      replace(content, errorBox(exc));
    }
    schedule();
  }

  function schedule() {
    if (!stopped && live.checked && !timer) timer = setTimeout(refresh, REFRESH_MS);
  }

  live.addEventListener("change", () => { if (live.checked) refresh(); else { clearTimeout(timer); timer = null; } });
  await refresh();
  return () => { stopped = true; clearTimeout(timer); };
}
