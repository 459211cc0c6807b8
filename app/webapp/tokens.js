// The API tokens view (#/tokens): make a token for a script or CI (a name, its scopes, when
// it expires), see its secret once with Copy, list the account's tokens (GET
// /users/me/tokens: scopes, made, expires, last used; never a secret) and revoke one.

import { call } from "./api.js";
import { announce, count, el, field, formatDate, sentence } from "./ui.js";

// What each scope lets a token do, as the API says (POST /users/me/tokens).
const SCOPES = [
  { value: "read", text: "Read", hint: "list and download your files", checked: true },
  { value: "upload", text: "Upload", hint: "upload files, and make the folders they go into" },
  { value: "share", text: "Share", hint: "make, list and revoke share links; read" },
  { value: "full", text: "Full", hint: "everything your account can do, making tokens included" },
];
const EXPIRY = [
  { value: "7", text: "7 days" },
  { value: "30", text: "30 days", selected: true },
  { value: "90", text: "90 days" },
  { value: "365", text: "1 year" },
  { value: "never", text: "Never" },
];

// "expires 8 Mar 2027", "expired 1 Dec 2026" (refused since; still listed until revoked).
function expiryText(iso) {
  if (!iso) return "never expires";
  return `${new Date(iso) <= new Date() ? "expired" : "expires"} ${formatDate(iso)}`;
}

export function tokensView() {
  let generation = 0;

  const title = el("h2", { id: "tokens-title", tabindex: -1, text: "API tokens" });
  const intro = el(
    "p",
    { class: "muted" },
    "A token lets a script or CI use your account without your password: send it as ",
    el("code", { text: "Authorization: Bearer …" }),
    ", or put it in ",
    el("code", { text: "INSTASHARE_TOKEN" }),
    " for the command-line client. Changing your password ends every token.",
  );
  const name = el("input", { id: "token-name", type: "text", maxlength: 100, autocomplete: "off", required: true });
  const boxes = SCOPES.map(({ value, checked }) => el("input", { id: `token-scope-${value}`, type: "checkbox", value, checked }));
  const scopes = el(
    "fieldset",
    { id: "token-scopes", class: "token-scopes" },
    el("legend", { text: "It may" }),
    ...SCOPES.map(({ value, text, hint }, i) =>
      el("div", { class: "check" }, boxes[i], el("label", { for: `token-scope-${value}` }, el("strong", { text }), ` — ${hint}`)),
    ),
  );
  const expiry = el("select", { id: "token-expiry" }, ...EXPIRY.map(({ value, text, selected }) => el("option", { value, text, selected })));
  const error = el("p", { id: "token-error", class: "error", role: "alert" });
  const submit = el("button", { type: "submit", text: "Create token" });
  const form = el("form", { id: "token-form", class: "token-form", novalidate: true, onsubmit: create }, field("Name", name), scopes, field("Expires", expiry), error, submit);

  // The token just made: its secret, shown this once.
  const secret = el("input", { id: "token-secret", type: "text", readonly: true, "aria-describedby": "token-once" });
  const copyButton = el("button", { type: "button", text: "Copy", onclick: () => copySecret() });
  const fresh = el(
    "div",
    { id: "token-new", class: "token-new", hidden: true },
    el("label", { for: "token-secret", text: "Your new token" }),
    el("div", { class: "copy-row" }, secret, copyButton),
    el("p", { id: "token-once", class: "muted", text: "Copy it now: it is not shown again." }),
  );

  const listTitle = el("h3", { id: "tokens-list-title", text: "Your tokens" });
  const summary = el("p", { id: "tokens-count", class: "muted" });
  const listError = el("p", { id: "tokens-list-error", class: "error", role: "alert" });
  const list = el("ul", { id: "tokens-list", class: "share-list", "aria-labelledby": "tokens-list-title" });
  const empty = el("p", { id: "tokens-empty", class: "muted", hidden: true, text: "No tokens yet." });
  const root = el(
    "section",
    { id: "tokens-view", class: "card tokens", "aria-labelledby": "tokens-title", hidden: true },
    title,
    intro,
    form,
    fresh,
    listTitle,
    summary,
    listError,
    list,
    empty,
  );

  async function open({ focus = true } = {}) {
    root.hidden = false;
    if (focus) title.focus();
    await load();
  }

  async function load() {
    const asked = ++generation;
    listError.textContent = "";
    try {
      const { items } = await call("GET", "/users/me/tokens");
      if (asked !== generation) return;
      list.replaceChildren(...items.map(item));
      summary.textContent = items.length ? count(items.length, "token") : "";
      empty.hidden = items.length > 0;
    } catch (failure) {
      listError.textContent = `Your tokens could not be listed: ${failure.message}`;
    }
  }

  function refuse(message, control) {
    error.textContent = message;
    control.setAttribute("aria-invalid", "true");
    control.focus();
  }

  async function create(event) {
    event.preventDefault();
    error.textContent = "";
    for (const control of [name, scopes]) control.removeAttribute("aria-invalid");
    const chosen = boxes.filter((box) => box.checked).map((box) => box.value);
    if (!name.value.trim()) return refuse("Give the token a name.", name);
    if (chosen.length === 0) return refuse("Pick at least one thing the token may do.", boxes[0]);
    const body = { name: name.value.trim(), scopes: chosen };
    if (expiry.value !== "never") body.expires_in_days = Number(expiry.value);
    submit.disabled = true;
    try {
      const made = await call("POST", "/users/me/tokens", { body });
      secret.value = made.token;
      fresh.hidden = false;
      copyButton.textContent = "Copy";
      name.value = "";
      secret.focus();
      secret.select();
      announce(`Token ${made.name} made; copy it now`);
      await load();
    } catch (failure) {
      refuse(sentence(failure.message), name);
    } finally {
      submit.disabled = false;
    }
  }

  async function copySecret() {
    try {
      await navigator.clipboard.writeText(secret.value);
      copyButton.textContent = "Copied";
      announce("Token copied");
    } catch {
      secret.select(); // no clipboard permission: Ctrl+C does the rest
      announce("Select the token and copy it");
    }
  }

  function item(token) {
    const facts = [
      `made ${formatDate(token.created_at)}`,
      expiryText(token.expires_at),
      token.last_used_at ? `last used ${formatDate(token.last_used_at)}` : "never used",
    ];
    const revoke = async () => {
      try {
        await call("DELETE", `/users/me/tokens/${token.id}`);
        announce(`Token ${token.name} revoked`);
        await load();
      } catch (failure) {
        listError.textContent = `The token could not be revoked: ${failure.message}`;
      }
    };
    return el(
      "li",
      { class: "share token", "data-token-id": token.id },
      el("p", { class: "link-what" }, el("span", { class: "token-name", text: token.name })),
      el("p", { class: "share-facts" }, ...token.scopes.map((scope) => el("span", { class: "badge scope", text: scope })), ` ${facts.join(" · ")}`),
      el("button", { type: "button", class: "small danger", text: "Revoke", "aria-label": `Revoke the token ${token.name}`, onclick: revoke }),
    );
  }

  return {
    root,
    open,
    close() {
      generation += 1;
      root.hidden = true;
      fresh.hidden = true; // shown once: gone when the view is left
      secret.value = "";
    },
  };
}
