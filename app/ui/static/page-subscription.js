// One subscription: definition, health, recent attempts, and what may be done to it.

import { del, get, patch, post, seg } from "./api.js";
import { dl, fmtMs, fmtNumber, fmtPercent, h, jsonBlock, link, replace, route, table, timeEl } from "./dom.js";
import { announce, busy, confirmDialog, errorBox, field, fieldErrors, notice, show } from "./ui.js";

const ATTEMPTS_PAGE = 20;

function definition(sub) {
  return dl([
    ["Topic", link(route("dlq", sub.topic), sub.topic, { title: "Dead letters of this topic" })],
    ["URL", h("span", { class: "url" }, sub.url)],
    ["State", sub.paused ? `paused${sub.paused_reason ? ` (${sub.paused_reason})` : ""}` : "active"],
    ["Condition", sub.condition ? h("code", {}, sub.condition) : "none (every message)"],
    ["Retries", `${sub.retry.max_retries} after the first attempt, ${sub.retry.backoff} from ${fmtMs(sub.retry.retry_delay_ms)}, at most ${fmtMs(sub.retry.max_delay_ms)}, jitter ${sub.retry.jitter}`],
    ["Dead-letter topic", sub.dead_letter_topic || "none"],
    ["Timeout", fmtMs(sub.timeout_ms)],
    ["Max in flight", fmtNumber(sub.max_in_flight)],
    ["Payload", sub.payload],
    ["Signing secret", sub.secret ? h("code", {}, sub.secret) : "none (unsigned)"],
    sub.previous_secret_expires_at ? ["Previous secret signs until", timeEl(sub.previous_secret_expires_at)] : null,
    ["Headers", Object.keys(sub.headers || {}).length ? jsonBlock(sub.headers, "Headers") : "none"],
    sub.auto_pause !== undefined ? ["Auto-pause", sub.auto_pause
      ? `after ${sub.auto_pause.after_consecutive_failures ?? "any number of"} failures in a row and ${fmtMs(sub.auto_pause.after_failing_for_ms)} failing`
      : "never"] : null,
    ["Created", timeEl(sub.created_at)],
    ["Updated", timeEl(sub.updated_at)],
  ]);
}

function lastOutcome(last) {
  if (!last) return "none";
  return h("span", {}, timeEl(last.at), ` — ${last.status ?? "no response"} ${last.reason || ""}`);
}

function health(sub, session) {
  const hl = sub.health;
  if (!hl) {
    return h("p", { class: "muted" }, session.has("attempt_log")
      ? "No health figures (delivery insight is turned off on this hookline)."
      : "Health figures are not available on this server.");
  }
  return dl([
    ["Success rate, 5 min", `${fmtPercent(hl.success_rate_5m)} of ${fmtNumber(hl.attempts_5m)} attempts`],
    ["Success rate, 1 h", `${fmtPercent(hl.success_rate_1h)} of ${fmtNumber(hl.attempts_1h)} attempts`],
    ["Consecutive failures", fmtNumber(hl.consecutive_failures)],
    ["Last success", lastOutcome(hl.last_success)],
    ["Last failure", lastOutcome(hl.last_failure)],
    ["Attempt duration p50 / p99", `${fmtMs(hl.p50_duration_ms)} / ${fmtMs(hl.p99_duration_ms)}`],
  ], "facts health");
}

function attemptRows(attempts, session) {
  return attempts.map((a) => h("tr", { class: a.outcome === "failed" ? "failed" : "" },
    h("td", {}, timeEl(a.started_at)),
    h("td", {}, session.has("message_lookup") && session.can("dlq")
      ? link(route("messages", a.message_id), a.message_id) : a.message_id),
    h("td", { class: "num" }, fmtNumber(a.attempt)),
    h("td", {}, h("span", { class: `badge ${a.outcome === "failed" ? "bad" : "good"}` }, `${a.status ?? "–"} ${a.reason || ""}`)),
    h("td", { class: "num" }, fmtMs(a.duration_ms)),
    h("td", {}, a.next_step || "–"),
    h("td", { class: "excerpt" }, a.response_excerpt || "")));
}

function attemptsSection(sub, session) {
  const section = h("section", { class: "card", "aria-labelledby": "attempts-title" },
    h("h2", { id: "attempts-title" }, "Recent attempts"));
  if (!session.has("attempt_log")) {
    section.append(h("p", { class: "muted" }, "The attempt log is not available on this server."));
    return section;
  }
  const outcome = field("Show", { kind: "select", name: "outcome", options: [["", "all attempts"], ["failed", "failed only"], ["succeeded", "succeeded only"]] });
  const slot = h("div", {});
  const more = h("button", { type: "button", hidden: true }, "Older attempts");
  let cursor = null;
  let rows = [];

  async function load(reset) {
    if (reset) { cursor = null; rows = []; }
    try {
      const page = await get(`v1/subscriptions/${seg(sub.id)}/attempts`, { outcome: outcome.input.value, limit: ATTEMPTS_PAGE, cursor });
      rows = rows.concat(page.attempts);
      cursor = page.next_cursor;
      more.hidden = !cursor;
      replace(slot, rows.length
        ? table("Attempts, newest first", ["Started", "Message", "Attempt", "Answer", "Duration", "Then", "Response"], attemptRows(rows, session))
        : h("p", { class: "muted" }, "No attempts recorded."));
    } catch (exc) {
      replace(slot, exc.routeMissing ? h("p", { class: "muted" }, "The attempt log is not available on this server.") : errorBox(exc));
      more.hidden = true;
    }
  }
  outcome.input.addEventListener("change", () => load(true));
  more.addEventListener("click", () => busy(more, () => load(false)));
  section.append(h("div", { class: "inline-form" }, outcome.wrap), slot, more);
  load(true);
  return section;
}

function actions(sub, { reload, status }) {
  const pause = h("button", { type: "button", disabled: sub.paused }, "Pause");
  const resume = h("button", { type: "button", disabled: !sub.paused }, "Resume");
  const toggle = (button, verb) => busy(button, async () => {
    try {
      await post(`v1/subscriptions/${seg(sub.id)}/${verb}`);
      await reload(`Subscription ${sub.id} ${verb === "pause" ? "paused" : "resumed"}.`);
    } catch (exc) { show(status, errorBox(exc)); }
  });
  pause.addEventListener("click", () => toggle(pause, "pause"));
  resume.addEventListener("click", () => toggle(resume, "resume"));

  const grace = field("Old secret keeps signing for (ms)", { name: "grace_ms", type: "number", min: 0, step: 1000, placeholder: "86400000", inputmode: "numeric", hint: "Empty: the server's default (24 h). 0 ends the old secret at once." });
  const rotate = h("button", { type: "button" }, "Rotate secret");
  const secretSlot = h("div", {});
  rotate.addEventListener("click", () => busy(rotate, async () => {
    const ok = await confirmDialog({ title: "Rotate the signing secret?", text: "A new secret signs every delivery from now on; it is shown once.", confirm: "Rotate" });
    if (!ok) return;
    const body = grace.input.value === "" ? undefined : { grace_ms: Number(grace.input.value) };
    try {
      const rotated = await post(`v1/subscriptions/${seg(sub.id)}/rotate-secret`, body);
      grace.error("");
      const out = h("input", { type: "text", readonly: true, value: rotated.secret, id: "new-secret", class: "secret" });
      replace(secretSlot, h("div", { class: "alert ok", role: "status" },
        h("label", { for: "new-secret" }, "New secret (shown this once: copy it now)"), out));
      out.focus();
      out.select();
      announce("Secret rotated. The new secret is shown once.");
    } catch (exc) {
      fieldErrors(exc, { grace_ms: grace }, status);
    }
  }));

  const remove = h("button", { type: "button", class: "danger" }, "Delete subscription");
  remove.addEventListener("click", () => busy(remove, async () => {
    const ok = await confirmDialog({ title: `Delete ${sub.id}?`, text: "Its pending messages are dropped; its dead letters stay until purged. This cannot be undone.", confirm: "Delete", danger: true });
    if (!ok) return;
    try {
      await del(`v1/subscriptions/${seg(sub.id)}`);
      announce(`Subscription ${sub.id} deleted.`);
      location.hash = "#/";
    } catch (exc) { show(status, errorBox(exc)); }
  }));

  return h("section", { class: "card", "aria-labelledby": "actions-title" },
    h("h2", { id: "actions-title" }, "Actions"),
    h("div", { class: "actions" }, pause, resume),
    h("div", { class: "inline-form" }, grace.wrap, rotate),
    secretSlot,
    h("div", { class: "actions" }, remove));
}

function editForm(sub, { reload }) {
  const r = sub.retry;
  const fields = {
    "retry.max_retries": field("Max retries", { name: "max_retries", type: "number", min: 0, max: 100, value: r.max_retries, required: true, inputmode: "numeric" }),
    "retry.retry_delay_ms": field("First retry delay (ms)", { name: "retry_delay_ms", type: "number", min: 0, value: r.retry_delay_ms, required: true, inputmode: "numeric" }),
    "retry.backoff": field("Backoff", { kind: "select", name: "backoff", options: [["exponential", "exponential"], ["fixed", "fixed"]], value: r.backoff }),
    "retry.max_delay_ms": field("Longest delay (ms)", { name: "max_delay_ms", type: "number", min: 0, value: r.max_delay_ms, required: true, inputmode: "numeric" }),
    "retry.jitter": field("Jitter (0–1)", { name: "jitter", type: "number", min: 0, max: 1, step: 0.05, value: r.jitter, required: true, inputmode: "decimal" }),
    condition: field("Condition (CEL)", { kind: "textarea", name: "condition", rows: 3, value: sub.condition || "", spellcheck: "false", hint: "Over data, topic and headers, e.g. data.amount > 100. Empty: every message." }),
  };
  const formStatus = h("div", { class: "status-slot" });
  const save = h("button", { type: "submit", class: "primary" }, "Save changes");
  const form = h("form", { "aria-labelledby": "edit-title", novalidate: true },
    h("fieldset", {}, h("legend", {}, "Retry policy"),
      h("div", { class: "grid" }, ["retry.max_retries", "retry.retry_delay_ms", "retry.backoff", "retry.max_delay_ms", "retry.jitter"].map((k) => fields[k].wrap))),
    fields.condition.wrap, formStatus, h("div", { class: "actions" }, save));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(save, async () => {
      const number = (k) => (fields[k].input.value === "" ? null : Number(fields[k].input.value));
      const condition = fields.condition.input.value.trim();
      const body = {
        retry: {
          max_retries: number("retry.max_retries"),
          retry_delay_ms: number("retry.retry_delay_ms"),
          backoff: fields["retry.backoff"].input.value,
          max_delay_ms: number("retry.max_delay_ms"),
          jitter: number("retry.jitter"),
        },
        condition: condition || null,
      };
      for (const [k, v] of Object.entries(body.retry)) if (v === null) delete body.retry[k];
      try {
        await patch(`v1/subscriptions/${seg(sub.id)}`, body);
        await reload("Retry policy and condition saved.");
      } catch (exc) {
        fieldErrors(exc, fields, formStatus);
      }
    });
  });
  return h("section", { class: "card", "aria-labelledby": "edit-title" },
    h("h2", { id: "edit-title" }, "Retry policy and condition"), form);
}

export async function render(main, { params, session }) {
  const id = params.id;
  let sub;
  try {
    sub = await get(`v1/subscriptions/${seg(id)}`);
  } catch (exc) {
    main.append(h("h1", {}, `Subscription ${id}`), errorBox(exc));
    return null;
  }
  const status = h("div", { class: "status-slot", id: "sub-status" });
  const reload = async (message) => {
    const fresh = await get(`v1/subscriptions/${seg(id)}`);
    replace(main);
    await draw(fresh);
    show(main.querySelector("#sub-status"), notice(message));
    const heading = main.querySelector("h1");
    heading.setAttribute("tabindex", "-1");
    heading.focus();
  };
  async function draw(current) {
    main.append(
      h("p", { class: "crumbs" }, link("#/", "Overview"), " / ", current.topic),
      h("div", { class: "page-head" },
        h("h1", {}, "Subscription ", h("code", {}, current.id)),
        h("span", { class: `badge ${current.paused ? "paused" : "active"}`, id: "sub-state" }, current.paused ? "paused" : "active")),
      status,
      actions(current, { reload, status }),
      h("section", { class: "card", "aria-labelledby": "health-title" }, h("h2", { id: "health-title" }, "Health"), health(current, session)),
      attemptsSection(current, session),
      editForm(current, { reload, status }),
      h("section", { class: "card", "aria-labelledby": "def-title" }, h("h2", { id: "def-title" }, "Definition"), definition(current),
        h("details", {}, h("summary", {}, "As JSON"), jsonBlock(current, "Subscription as JSON"))));
  }
  await draw(sub);
  return null;
}
