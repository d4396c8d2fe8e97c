// The console's shell: who is signed in, the navigation, and which page the hash shows.

import { apiRoot, request, storeKey, storedKey } from "./api.js";
import { h, replace } from "./dom.js";
import { errorBox } from "./ui.js";
import * as overview from "./page-overview.js";
import * as subscription from "./page-subscription.js";
import * as message from "./page-message.js";
import * as dlq from "./page-dlq.js";
import * as publish from "./page-publish.js";
import * as signin from "./page-signin.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const sessionEl = document.getElementById("session");
const banner = document.getElementById("banner");

/** What this server offers and what the signed-in key may do. */
const session = {
  auth: null,          // "api_keys" or "open"
  scopes: [],
  features: new Set((document.body.dataset.features || "").split(" ").filter(Boolean)),
  metricsNeedAdmin: document.body.dataset.metrics === "admin",
  can(scope) {
    return this.scopes.includes("admin") || this.scopes.includes(scope);
  },
  has(feature) {
    return this.features.has(feature);
  },
};

// In navigation order; `feature`: a route not every hookline has (see app/ui/__init__.py).
const PAGES = [
  { path: [], page: overview, nav: "Overview", scope: "subscriptions" },
  { path: ["messages", ":id?"], page: message, nav: "Messages", scope: "dlq", feature: "message_lookup", unavailable: "Message lookup is not available on this server." },
  { path: ["dlq", ":topic?"], page: dlq, nav: "Dead letters", scope: "dlq" },
  { path: ["publish"], page: publish, nav: "Publish", scope: "publish" },
  { path: ["subscriptions", ":id"], page: subscription, scope: "subscriptions" },
];

let cleanup = null;
let firstRender = true;

/** "#/dlq/orders?subscription=a" -> {segments: ["dlq", "orders"], query}. */
function parseHash() {
  const hash = location.hash.startsWith("#/") ? location.hash.slice(2) : "";
  const [path, search = ""] = hash.split("?");
  const segments = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { segments, query: new URLSearchParams(search) };
}

function match(segments) {
  for (const entry of PAGES) {
    const params = {};
    const pattern = entry.path;
    const required = pattern.filter((p) => !p.endsWith("?")).length;
    if (segments.length < required || segments.length > pattern.length) continue;
    let ok = true;
    pattern.forEach((part, i) => {
      if (part.startsWith(":")) {
        if (segments[i] !== undefined) params[part.replace(/[:?]/g, "")] = segments[i];
      } else if (segments[i] !== part) {
        ok = false;
      }
    });
    if (ok) return { entry, params };
  }
  return null;
}

/** The first page this key may see (a publish-only key has no overview). */
function home() {
  const entry = PAGES.find((e) => e.nav && allowed(e));
  return entry ? `#/${entry.path.filter((p) => !p.startsWith(":")).join("/")}` : null;
}

function allowed(entry) {
  return session.can(entry.scope) && (!entry.feature || session.has(entry.feature));
}

function renderNav(current) {
  const items = PAGES.filter((e) => e.nav && allowed(e));
  replace(nav, h("ul", {}, items.map((entry) => {
    const hash = `#/${entry.path.filter((p) => !p.startsWith(":")).join("/")}`;
    const active = current === entry;
    return h("li", {}, h("a", { href: hash, "aria-current": active ? "page" : undefined }, entry.nav));
  })));
  nav.hidden = false;
}

function renderSession() {
  if (session.auth === "api_keys") {
    replace(sessionEl,
      h("span", { class: "scopes" }, `Key scopes: ${session.scopes.join(", ") || "none"}`),
      h("button", { type: "button", class: "link-button", onclick: signOut }, "Sign out"));
  } else {
    replace(sessionEl);
  }
}

/** Bumped by every render and sign-in screen: a page render still waiting for the API when
 * a newer one starts finishes into its own detached view, never beside the newer page. */
let generation = 0;

async function render() {
  if (location.hash && !location.hash.startsWith("#/")) return; // in-page anchors (skip link)
  const mine = ++generation;
  const focus = !firstRender; // the page as loaded keeps the browser's focus
  firstRender = false;
  if (cleanup) { cleanup(); cleanup = null; }
  const { segments, query } = parseHash();
  let found = match(segments);
  if (found && found.entry.page === overview && !session.can("subscriptions")) {
    const target = home();
    if (target && target !== "#/") {
      firstRender = !focus; // the page this redirects to is still the first one shown
      location.replace(target);
      return;
    }
  }
  renderNav(found ? found.entry : null);
  if (!found) {
    replace(main, h("h1", { tabindex: -1 }, "Not found"), h("p", {}, h("a", { href: "#/" }, "Back to the overview")));
  } else if (!allowed(found.entry)) {
    replace(main, h("h1", { tabindex: -1 }, found.entry.nav || "Not allowed"),
      h("p", {}, found.entry.feature && !session.has(found.entry.feature)
        ? found.entry.unavailable
        : `This API key lacks the ${found.entry.scope} scope this page needs.`));
  } else {
    const view = h("div", { class: "view" });
    replace(main, view);
    const done = (await found.entry.page.render(view, { params: found.params, query, session })) || null;
    if (mine !== generation) { // a later render or the sign-in screen owns the page now
      if (done) done();
      return;
    }
    cleanup = done;
  }
  if (focus) focusHeading();
}

/** After a page change, focus its heading so keyboard and screen reader users start there. */
function focusHeading() {
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus();
  }
}

function openModeBanner(readiness) {
  replace(banner, h("div", { class: "alert warning", role: "note" },
    h("strong", {}, `Warning: auth ${readiness.auth}. `),
    "Anyone who can reach this server can read and change everything. Set auth.api_keys in ",
    h("code", {}, "config.yaml"), " or ", h("code", {}, "HOOKLINE_API_KEYS"), " before exposing it."));
}

function readinessBanner(readiness) {
  if (readiness.status !== "ready") {
    banner.append(h("div", { class: "alert error", role: "alert" },
      `The ${readiness.adapter} backend is not ready: ${readiness.reason || readiness.status}`));
  }
}

async function showSignIn(error) {
  generation += 1;
  if (cleanup) { cleanup(); cleanup = null; }
  nav.hidden = true;
  replace(sessionEl);
  replace(main);
  await signin.render(main, { error, onSignedIn: signedIn });
}

function signedIn(who) {
  session.auth = who.auth;
  session.scopes = who.scopes;
  renderSession();
  const { segments } = parseHash();
  const found = match(segments);
  if (!found || !allowed(found.entry)) {
    const target = home();
    if (target && location.hash !== target) { location.hash = target; return; }
  }
  render();
}

function signOut() {
  storeKey(null);
  session.auth = null;
  session.scopes = [];
  showSignIn();
}

/** /readyz: whether the backend answers and whether auth is on (its body, even on 503). */
async function readiness() {
  const response = await fetch(new URL("readyz", apiRoot), {
    headers: { Accept: "application/json" }, cache: "no-store",
  });
  return response.json();
}

async function start() {
  let ready;
  try {
    ready = await readiness();
  } catch (exc) {
    replace(main, h("h1", {}, "hookline console"), errorBox(exc, "Cannot reach hookline: "));
    return;
  }
  readinessBanner(ready);
  const open = !String(ready.auth).startsWith("api_keys");
  if (open) openModeBanner(ready);
  if (!open && !storedKey()) { await showSignIn(); return; }
  try {
    signedIn(await request("GET", "v1/whoami", { key: open ? null : storedKey() }));
  } catch (exc) {
    storeKey(null);
    await showSignIn(exc);
  }
}

window.addEventListener("hashchange", () => { if (session.auth) render(); });
window.addEventListener("hookline:unauthorized", (event) => {
  if (session.auth !== "api_keys") return;
  storeKey(null);
  session.auth = null;
  showSignIn(event.detail);
});

start();
