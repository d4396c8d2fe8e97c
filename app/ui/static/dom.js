// Building the page without innerHTML: every value becomes text, never markup.

/** An element: h("a", {href: "#/"}, "text", child, ...). `on*` props become listeners. */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === "class") {
      el.className = value;
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (value === true) {
      el.setAttribute(name, "");
    } else if (name === "value" && "value" in el) {
      el.value = value;
    } else {
      el.setAttribute(name, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace everything inside `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let unique = 0;
/** An id no other element has, for label/aria links. */
export function uid(prefix = "f") {
  unique += 1;
  return `${prefix}-${unique}`;
}

/** Epoch ms as local date and time; "–" for nothing. */
export function fmtTime(ms) {
  if (ms === undefined || ms === null) return "–";
  const date = new Date(ms);
  return date.toLocaleString(undefined, {
    year: "numeric", month: "short", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}

/** A <time> element for epoch ms, machine-readable too. */
export function timeEl(ms) {
  if (ms === undefined || ms === null) return "–";
  return h("time", { datetime: new Date(ms).toISOString() }, fmtTime(ms));
}

/** A count with thousands separators. */
export function fmtNumber(n) {
  if (n === undefined || n === null) return "–";
  return Number(n).toLocaleString();
}

/** Per-second rate: "–" until known. */
export function fmtRate(rate) {
  if (rate === undefined || rate === null || Number.isNaN(rate)) return "–";
  return `${rate < 10 ? rate.toFixed(1) : Math.round(rate).toLocaleString()}/s`;
}

/** A ratio 0..1 as a percentage. */
export function fmtPercent(ratio) {
  if (ratio === undefined || ratio === null) return "–";
  return `${(ratio * 100).toFixed(ratio === 1 || ratio === 0 ? 0 : 1)} %`;
}

/** Milliseconds, readable. */
export function fmtMs(ms) {
  if (ms === undefined || ms === null) return "–";
  if (ms >= 60000 && ms % 1000 === 0) return `${(ms / 1000).toLocaleString()} s`;
  return `${Number(ms).toLocaleString(undefined, { maximumFractionDigits: 1 })} ms`;
}

/** Any JSON value, pretty-printed in a <pre>. */
export function jsonBlock(value, label) {
  return h("pre", { class: "json", tabindex: 0, "aria-label": label },
    JSON.stringify(value, null, 2) ?? "null");
}

/** A definition list from [term, value] pairs (values may be nodes). */
export function dl(pairs, cls = "facts") {
  return h("dl", { class: cls },
    pairs.filter(Boolean).map(([term, value]) => h("div", {}, h("dt", {}, term), h("dd", {}, value ?? "–"))));
}

/** A table inside a scrollable, focusable region (phones scroll it sideways). */
export function table(caption, headers, rows, { captionHidden = false } = {}) {
  return h("div", { class: "table-wrap", tabindex: 0, role: "region", "aria-label": caption },
    h("table", {},
      h("caption", { class: captionHidden ? "visually-hidden" : "" }, caption),
      h("thead", {}, h("tr", {}, headers.map((name) =>
        h("th", { scope: "col" }, name)))),
      h("tbody", {}, rows)));
}

/** A link inside the console. */
export function link(hash, text, props = {}) {
  return h("a", { href: hash, ...props }, text);
}

/** The hash of a console route, segments encoded. */
export function route(...segments) {
  let query = "";
  const last = segments[segments.length - 1];
  if (last && typeof last === "object") {
    segments = segments.slice(0, -1);
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(last)) {
      if (value !== undefined && value !== null && value !== "") params.set(key, value);
    }
    const text = params.toString();
    query = text ? `?${text}` : "";
  }
  return `#/${segments.map((s) => encodeURIComponent(s)).join("/")}${query}`;
}
