// Pieces every page uses: error boxes, announcements, confirmation dialogs, form fields.

import { h, uid } from "./dom.js";

/** Say something to screen readers (and keep it visible nowhere else). */
export function announce(text) {
  const region = document.getElementById("announcer");
  region.textContent = "";
  // A fresh text node after a tick is announced even when the text repeats.
  setTimeout(() => { region.textContent = text; }, 50);
}

/** The server's error, as a box the screen reader reads at once. */
export function errorBox(error, prefix = "") {
  const code = error && error.code ? ` (${error.code})` : "";
  const message = error && error.message ? error.message : String(error);
  return h("div", { class: "alert error", role: "alert" }, `${prefix}${message}${code}`);
}

/** A success notice, visible and announced. */
export function notice(text) {
  announce(text);
  return h("div", { class: "alert ok" }, text);
}

/** Put `node` (or nothing) in the slot `el`. */
export function show(el, node) {
  el.replaceChildren();
  if (node) el.append(node);
}

/**
 * A modal dialog asking to confirm something; resolves true when confirmed.
 * Focus starts on Cancel and returns to what had it before.
 */
export function confirmDialog({ title, text, confirm = "Confirm", danger = false }) {
  return new Promise((resolve) => {
    const opener = document.activeElement;
    const titleId = uid("dlg");
    const cancelButton = h("button", { type: "button", value: "cancel" }, "Cancel");
    const okButton = h("button", { type: "button", class: danger ? "danger" : "primary", value: "ok" }, confirm);
    const dialog = h("dialog", { "aria-labelledby": titleId, class: "confirm" },
      h("h2", { id: titleId }, title),
      h("p", {}, text),
      h("div", { class: "actions" }, cancelButton, okButton));
    let answer = false;
    cancelButton.addEventListener("click", () => dialog.close());
    okButton.addEventListener("click", () => { answer = true; dialog.close(); });
    dialog.addEventListener("close", () => {
      dialog.remove();
      if (opener && opener.isConnected) opener.focus();
      resolve(answer);
    });
    document.body.append(dialog);
    dialog.showModal();
    cancelButton.focus();
  });
}

/** A modal dialog showing `content` with a Close button. */
export function infoDialog(title, content) {
  const opener = document.activeElement;
  const titleId = uid("dlg");
  const close = h("button", { type: "button" }, "Close");
  const dialog = h("dialog", { "aria-labelledby": titleId, class: "info" },
    h("div", { class: "dialog-head" }, h("h2", { id: titleId }, title), close),
    content);
  close.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => {
    dialog.remove();
    if (opener && opener.isConnected) opener.focus();
  });
  document.body.append(dialog);
  dialog.showModal();
  close.focus();
  return dialog;
}

/**
 * A labelled form field with room for its own error: returns {wrap, input, error(text)}.
 * `kind` is "input", "textarea" or "select" (`options`: [[value, label], ...]).
 */
export function field(label, { kind = "input", name, hint, options = [], ...props } = {}) {
  const id = uid(name || "f");
  const hintId = hint ? `${id}-hint` : undefined;
  const errorId = `${id}-error`;
  let input;
  if (kind === "select") {
    input = h("select", { id, name, ...props },
      options.map(([value, text]) => h("option", { value }, text)));
    if (props.value !== undefined) input.value = props.value;
  } else {
    input = h(kind, { id, name, ...props });
  }
  if (hintId) input.setAttribute("aria-describedby", hintId);
  const errorEl = h("p", { id: errorId, class: "field-error", hidden: true });
  const wrap = h("div", { class: "field" },
    h("label", { for: id }, label),
    hint ? h("p", { id: hintId, class: "hint" }, hint) : null,
    input,
    errorEl);
  const error = (text) => {
    errorEl.textContent = text || "";
    errorEl.hidden = !text;
    if (text) {
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", [hintId, errorId].filter(Boolean).join(" "));
    } else {
      input.removeAttribute("aria-invalid");
      if (hintId) input.setAttribute("aria-describedby", hintId);
      else input.removeAttribute("aria-describedby");
    }
  };
  return { wrap, input, error };
}

/**
 * Show a 422's errors next to the fields they name (`fields`: dotted path -> field);
 * what names no field goes to `fallback`. Returns true when some field took one.
 */
export function fieldErrors(error, fields, fallback) {
  for (const f of Object.values(fields)) f.error("");
  let placed = false;
  const details = Array.isArray(error.details) ? error.details : [];
  for (const item of details) {
    const path = (item.loc || []).filter((p) => !["body", "path", "query"].includes(p)).join(".");
    const target = fields[path] || fields[path.split(".")[0]];
    if (target) {
      target.error(item.msg || error.message);
      placed = true;
    }
  }
  if (placed) {
    const first = Object.values(fields).find((f) => f.input.getAttribute("aria-invalid"));
    if (first) first.input.focus();
    show(fallback, h("div", { class: "alert error", role: "alert" }, error.message));
  } else {
    show(fallback, errorBox(error));
  }
  return placed;
}

/** Run `action` once at a time for `button` (a second click meanwhile does nothing). */
export async function busy(button, action) {
  if (button.getAttribute("aria-busy") === "true") return undefined;
  button.setAttribute("aria-busy", "true");
  try {
    return await action();
  } finally {
    button.removeAttribute("aria-busy");
  }
}
