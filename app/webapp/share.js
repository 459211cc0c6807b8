// The share dialog: make a link (expiry, password, download limit, ZIP or original), copy
// it, see its links with their download counts, revoke one. It shares one file (as before:
// POST /files/{id}/shares), or a folder or a selection of files and folders as one link
// (POST /shares).

import { call } from "./api.js";
import { announce, count, el, field, foldersAndFiles, formatDate } from "./ui.js";

export function shareDialog() {
  let current = null; // what is shared: [{kind, id, name, ...}]
  let opener = null; // what had the focus before: it gets it back on close
  let made = []; // the links made since the dialog opened, for a folder or a selection

  const close = el("button", { type: "button", class: "secondary", "aria-label": "Close", text: "Close", onclick: () => root.close() });
  const fileName = el("p", { id: "share-file", class: "share-file" });
  const serves = el(
    "select",
    { id: "share-serves" },
    el("option", { value: "zip", text: "The ZIP archive" }),
    el("option", { value: "original", text: "The original file" }),
  );
  const days = el("input", { id: "share-days", type: "number", min: 1, value: 7, inputmode: "numeric" });
  const password = el("input", { id: "share-password", type: "password", autocomplete: "new-password", minlength: 4, maxlength: 1024 });
  const max = el("input", { id: "share-max", type: "number", min: 1, max: 1000000, inputmode: "numeric" });
  const error = el("p", { id: "share-error", class: "error", role: "alert" });
  const submit = el("button", { type: "submit", text: "Create link" });
  const form = el(
    "form",
    { class: "share-form", novalidate: true, onsubmit: create },
    field("Recipients get", serves),
    field("Expires after (days)", days),
    field("Password (optional)", password),
    field("Download limit (optional)", max),
    error,
    submit,
  );
  const url = el("input", { id: "share-url", type: "text", readonly: true });
  const copyNew = el("button", { type: "button", text: "Copy", onclick: () => copy(url.value, copyNew, url) });
  const fresh = el(
    "div",
    { class: "share-new", hidden: true },
    el("label", { for: "share-url", text: "New link" }),
    el("div", { class: "copy-row" }, url, copyNew),
  );
  const linksTitle = el("h3", { id: "share-links-title", text: "Links to this file" });
  const list = el("ul", { id: "share-list", class: "share-list", "aria-labelledby": "share-links-title" });
  const none = el("p", { class: "muted", hidden: true, text: "No links yet." });
  const root = el(
    "dialog",
    { class: "dialog", "aria-labelledby": "share-title" },
    el("div", { class: "dialog-head" }, el("h2", { id: "share-title", text: "Share" }), close),
    fileName,
    form,
    fresh,
    linksTitle,
    list,
    none,
  );
  root.addEventListener("close", () => {
    current = null;
    opener?.focus();
  });

  const single = () => current.length === 1 && current[0].kind === "file";

  // `items`: what to share, as the list has them ([{kind, id, name, ...}]).
  function open(items) {
    current = items;
    made = [];
    opener = document.activeElement;
    fileName.textContent = describe(items);
    linksTitle.textContent = single() ? "Links to this file" : "Links made now";
    form.reset();
    // A folder or selection: each file, and Download all, in its ZIP form or as it was sent.
    serves.options[0].textContent = single() ? "The ZIP archive" : "Compressed files (ZIP)";
    serves.options[1].textContent = single() ? "The original file" : "The original files";
    error.textContent = "";
    fresh.hidden = true;
    url.value = ""; // the last dialog's link is not this one's
    list.replaceChildren();
    root.showModal();
    serves.focus();
    listLinks();
  }

  async function create(event) {
    event.preventDefault();
    const body = { serves: serves.value };
    if (days.value.trim()) body.expires_in_days = Number(days.value.trim());
    if (password.value) body.password = password.value;
    if (max.value.trim()) body.max_downloads = Number(max.value.trim());
    submit.disabled = true;
    try {
      let share;
      if (single()) {
        share = await call("POST", `/files/${current[0].id}/shares`, { body });
      } else {
        body.items = current.map(({ kind, id }) => ({ kind, id }));
        share = await call("POST", "/shares", { body });
        made.unshift(share);
      }
      error.textContent = "";
      url.value = share.url;
      fresh.hidden = false;
      password.value = "";
      copyNew.focus();
      announce("Link created");
      listLinks();
    } catch (failure) {
      error.textContent = `The link could not be made: ${failure.message}`;
    } finally {
      submit.disabled = false;
    }
  }

  async function listLinks() {
    const shown = current;
    if (!single()) {
      // A folder's or a selection's earlier links are in the list of all links; here, those
      // made now.
      list.replaceChildren(...made.map(linkItem));
      none.hidden = made.length > 0;
      return;
    }
    try {
      const page = await call("GET", `/files/${shown[0].id}/shares?limit=100`);
      if (shown !== current) return;
      list.replaceChildren(...page.items.map(linkItem));
      none.hidden = page.items.length > 0;
    } catch (failure) {
      list.replaceChildren(el("li", { class: "error", text: `The links could not be listed: ${failure.message}` }));
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
      ...(share.kind && share.kind !== "file" ? [share.kind === "folder" ? "folder" : foldersAndFiles(share.items || [])] : []),
      share.has_password ? "password" : "no password",
      downloads,
      share.expires_at ? `expires ${formatDate(share.expires_at)}` : "never expires",
    ];
    const link = el("input", { type: "text", readonly: true, value: share.url, "aria-label": `Link created ${formatDate(share.created_at)}` });
    const copyButton = el("button", { type: "button", class: "small secondary", text: "Copy", onclick: () => copy(share.url, copyButton, link) });
    const revoke = async () => {
      try {
        await call("DELETE", `/shares/${share.id}`);
        made = made.map((link) => (link.id === share.id ? { ...link, state: "revoked" } : link));
        announce("Link revoked");
        listLinks();
      } catch (failure) {
        error.textContent = `The link could not be revoked: ${failure.message}`;
      }
    };
    return el(
      "li",
      { class: `share ${share.state}` },
      el("div", { class: "copy-row" }, link, copyButton),
      el("p", { class: "share-facts" }, el("span", { class: `badge ${share.state}`, text: share.state }), ` ${facts.join(" · ")}`),
      share.state === "active" && el("button", { type: "button", class: "small danger", text: "Revoke", onclick: revoke }),
    );
  }

  return { root, open };
}

async function copy(text, button, input) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
    announce("Link copied");
  } catch {
    input.select(); // no clipboard permission: Ctrl+C does the rest
    announce("Select the link and copy it");
  }
  setTimeout(() => {
    button.textContent = "Copy";
  }, 2000);
}

// What the dialog shares, in words: the file's or folder's name, or what the selection holds.
function describe(items) {
  if (items.length === 1) {
    const [item] = items;
    return item.kind === "folder" ? `The folder “${item.name}” and everything in it, including what is added later` : item.name;
  }
  const what = foldersAndFiles(items);
  const names = items.slice(0, 3).map((item) => item.name);
  const rest = items.length > 3 ? ` and ${count(items.length - 3, "more", "more")}` : "";
  return `${what}: ${names.join(", ")}${rest}`;
}
