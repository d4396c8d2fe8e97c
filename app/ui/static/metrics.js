// Publish and delivery rates from successive readings of /metrics (Prometheus text).

import { request } from "./api.js";

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Samples named `wanted`: [{name, labels, value}]. */
export function parse(text, wanted) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = SAMPLE.exec(line);
    if (!m || !wanted.has(m[1])) continue;
    const labels = {};
    for (const [, name, value] of (m[2] || "").matchAll(LABEL)) {
      labels[name] = value.replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    }
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

const PUBLISHED = "hookline_messages_published_total";
const DELIVERED = "hookline_deliveries_total";

/** Totals per topic and per subscription, from one reading. */
function totals(text) {
  const reading = { topics: new Map(), delivered: new Map(), subscriptions: new Map() };
  for (const s of parse(text, new Set([PUBLISHED, DELIVERED]))) {
    const map = s.name === PUBLISHED ? reading.topics : reading.delivered;
    map.set(s.labels.topic, (map.get(s.labels.topic) || 0) + s.value);
    if (s.name === DELIVERED) {
      const sub = s.labels.subscription;
      reading.subscriptions.set(sub, (reading.subscriptions.get(sub) || 0) + s.value);
    }
  }
  return reading;
}

/** Remembers the last reading; each `poll()` gives rates since then (null the first time). */
export class RateTracker {
  constructor() {
    this.last = null;
  }

  async poll() {
    const text = await request("GET", "metrics", { headers: { Accept: "text/plain" } });
    const now = performance.now();
    const reading = totals(text);
    const previous = this.last;
    this.last = { at: now, reading };
    if (!previous) return null;
    const seconds = (now - previous.at) / 1000;
    const rate = (current, before, name) =>
      Math.max(0, ((current.get(name) || 0) - (before.get(name) || 0)) / seconds);
    return {
      published: (topic) => rate(reading.topics, previous.reading.topics, topic),
      delivered: (topic) => rate(reading.delivered, previous.reading.delivered, topic),
      deliveredTo: (sub) => rate(reading.subscriptions, previous.reading.subscriptions, sub),
    };
  }
}
