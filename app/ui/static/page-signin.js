// Sign-in: an API key, checked against /v1/whoami, kept in this tab's sessionStorage only.

import { request, storeKey } from "./api.js";
import { h } from "./dom.js";
import { busy, errorBox, field, show } from "./ui.js";

export async function render(main, { error, onSignedIn }) {
  const key = field("API key", {
    name: "api-key", type: "password", autocomplete: "current-password", required: true,
    hint: "One of auth.api_keys. It is kept in this browser tab only, until you sign out or close it.",
  });
  const status = h("div", { class: "status-slot" });
  if (error) show(status, errorBox(error, "Key refused: "));
  const submit = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h("form", { class: "card narrow", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title", tabindex: -1 }, "Sign in"),
    h("p", {}, "This hookline requires an API key. What you see and may do depends on its scopes."),
    key.wrap, status, h("div", { class: "actions" }, submit));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(submit, async () => {
      const offered = key.input.value.trim();
      try {
        const who = await request("GET", "v1/whoami", { key: offered });
        storeKey(offered);
        onSignedIn(who);
      } catch (exc) {
        key.error(exc.message);
        show(status, errorBox(exc, "Key refused: "));
        key.input.focus();
        key.input.select();
      }
    });
  });
  main.append(form);
  key.input.focus();
}
