// A publish form, for trying a topic out.

import { post, seg } from "./api.js";
import { h, link, route } from "./dom.js";
import { busy, errorBox, field, fieldErrors, notice, show } from "./ui.js";

function parseJson(f, text, { object = false } = {}) {
  try {
    const value = JSON.parse(text);
    if (object && (value === null || typeof value !== "object" || Array.isArray(value))) {
      f.error("Must be a JSON object of strings.");
      return { ok: false };
    }
    return { ok: true, value };
  } catch (exc) {
    f.error(`Not valid JSON: ${exc.message}`);
    return { ok: false };
  }
}

export async function render(main, { query, session }) {
  const fields = {
    topic: field("Topic", { name: "topic", required: true, value: query.get("topic") || "", autocomplete: "off", spellcheck: "false", hint: "Letters, digits and . _ : - (topics exist as soon as they are used)." }),
    data: field("Data (JSON)", { kind: "textarea", name: "data", rows: 8, required: true, value: '{\n  "hello": "world"\n}', spellcheck: "false" }),
    headers: field("Headers (JSON object, optional)", { kind: "textarea", name: "headers", rows: 2, spellcheck: "false", placeholder: '{"source": "console"}', hint: "Message attributes, visible to conditions as headers." }),
    delay_ms: field("Delay (ms)", { name: "delay_ms", type: "number", min: 0, value: 0, inputmode: "numeric" }),
    key: field("Idempotency key (optional)", { name: "idempotency_key", autocomplete: "off", hint: "A repeat with the same key within the dedup window publishes nothing." }),
  };
  const status = h("div", { class: "status-slot", id: "publish-status" });
  const submit = h("button", { type: "submit", class: "primary" }, "Publish");
  const form = h("form", { class: "card", "aria-labelledby": "publish-title", novalidate: true },
    h("h1", { id: "publish-title" }, "Publish a message"),
    fields.topic.wrap, fields.data.wrap, fields.headers.wrap,
    h("div", { class: "grid" }, fields.delay_ms.wrap, fields.key.wrap),
    status, h("div", { class: "actions" }, submit));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(submit, async () => {
      for (const f of Object.values(fields)) f.error("");
      const topic = fields.topic.input.value.trim();
      if (!topic) { fields.topic.error("Enter a topic."); fields.topic.input.focus(); return; }
      const data = parseJson(fields.data, fields.data.input.value);
      if (!data.ok) { fields.data.input.focus(); return; }
      const body = { data: data.value };
      const headersText = fields.headers.input.value.trim();
      if (headersText) {
        const parsed = parseJson(fields.headers, headersText, { object: true });
        if (!parsed.ok) { fields.headers.input.focus(); return; }
        body.headers = parsed.value;
      }
      const delay = fields.delay_ms.input.value;
      if (delay !== "" && Number(delay) !== 0) body.delay_ms = Number(delay);
      const key = fields.key.input.value.trim();
      try {
        const result = await post(`v1/topics/${seg(topic)}/messages`, body,
          { headers: key ? { "Idempotency-Key": key } : {} });
        const text = result.duplicate
          ? `Duplicate: message ${result.id} was already published with this key; nothing new was published.`
          : `Published message ${result.id} to ${result.topic}.`;
        const box = notice(text);
        box.id = "published";
        box.dataset.messageId = result.id;
        if (session.has("message_lookup") && session.can("dlq")) {
          box.append(" ", link(route("messages", result.id), "Where did it go?"));
        }
        show(status, box);
      } catch (exc) {
        fieldErrors(exc, { topic: fields.topic, data: fields.data, headers: fields.headers, delay_ms: fields.delay_ms }, status);
      }
    });
  });
  main.append(form);
  return null;
}
