// The share dialog: make a link (expiry, password, download limit, ZIP or original), copy
// it, see the file's links with their download counts, revoke one.

import { call } from "./api.js";
import { $, announce, el, formatDate } from "./ui.js";

let current = null;

export function initShare() {
  const dialog = $("share-dialog");
  $("share-close").addEventListener("click", () => dialog.close());
  $("share-form").addEventListener("submit", create);
  $("share-copy").addEventListener("click", () => copy($("share-url").value, $("share-copy")));
  dialog.addEventListener("close", () => {
    current = null;
    opener?.focus();
  });
}

let opener = null;

export function openShare(file) {
  current = file;
  opener = document.activeElement;
  $("share-file").textContent = file.name;
  $("share-form").reset();
  $("share-error").textContent = "";
  $("share-new").hidden = true;
  $("share-list").replaceChildren();
  $("share-dialog").showModal();
  $("share-serves").focus();
  listLinks();
}

async function create(event) {
  event.preventDefault();
  const body = { serves: $("share-serves").value };
  const days = $("share-days").value.trim();
  const password = $("share-password").value;
  const max = $("share-max").value.trim();
  if (days) body.expires_in_days = Number(days);
  if (password) body.password = password;
  if (max) body.max_downloads = Number(max);
  const button = $("share-create");
  button.disabled = true;
  try {
    const share = await call("POST", `/files/${current.id}/shares`, { body });
    $("share-error").textContent = "";
    $("share-url").value = share.url;
    $("share-new").hidden = false;
    $("share-password").value = "";
    $("share-copy").focus();
    announce("Link created");
    listLinks();
  } catch (error) {
    $("share-error").textContent = `The link could not be made: ${error.message}`;
  } finally {
    button.disabled = false;
  }
}

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
    announce("Link copied");
  } catch {
    // No clipboard permission: select it, so Ctrl+C does the rest.
    const field = button.previousElementSibling;
    if (field instanceof HTMLInputElement) field.select();
    announce("Select the link and copy it");
  }
  setTimeout(() => {
    button.textContent = "Copy";
  }, 2000);
}

async function listLinks() {
  const file = current;
  const list = $("share-list");
  try {
    const page = await call("GET", `/files/${file.id}/shares?limit=100`);
    if (file !== current) return;
    list.replaceChildren(...page.items.map(linkItem));
    $("share-none").hidden = page.items.length > 0;
  } catch (error) {
    list.replaceChildren(el("li", { class: "error", text: `The links could not be listed: ${error.message}` }));
  }
}

function linkItem(share) {
  const plural = (n) => (n === 1 ? "download" : "downloads");
  const downloads =
    share.max_downloads === null
      ? `${share.downloads} ${plural(share.downloads)}`
      : `${share.downloads} of ${share.max_downloads} ${plural(share.max_downloads)}`;
  const facts = [
    share.serves === "zip" ? "ZIP" : "Original",
    share.has_password ? "password" : "no password",
    downloads,
    share.expires_at ? `expires ${formatDate(share.expires_at)}` : "never expires",
  ];
  const active = share.state === "active";
  const item = el(
    "li",
    { class: `share ${share.state}` },
    el("div", { class: "copy-row" },
      el("input", { type: "text", readonly: true, value: share.url, "aria-label": `Link created ${formatDate(share.created_at)}` }),
      el("button", { type: "button", class: "small secondary", text: "Copy", onclick: (event) => copy(share.url, event.currentTarget) }),
    ),
    el("p", { class: "share-facts" }, el("span", { class: `badge ${share.state}`, text: share.state }), ` ${facts.join(" · ")}`),
  );
  if (active) {
    item.append(
      el("button", {
        type: "button",
        class: "small danger",
        text: "Revoke",
        onclick: async () => {
          try {
            await call("DELETE", `/shares/${share.id}`);
            announce("Link revoked");
            listLinks();
          } catch (error) {
            $("share-error").textContent = `The link could not be revoked: ${error.message}`;
          }
        },
      }),
    );
  }
  return item;
}
