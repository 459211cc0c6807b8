// The share dialog: make a link (what it serves, when it expires, password, download limit),
// copy it or scan its QR code, see the other links with their download counts, revoke one.
// It shares one file (as before: POST /files/{id}/shares), or a folder or a selection of
// files and folders as one link (POST /shares).

import { call } from "./api.js";
import { copy, linkFacts, linkItem, qrPath, resetCopy, stateBadge } from "./link-item.js";
import { announce, count, el, field, foldersAndFiles, formatDate } from "./ui.js";

// When a new link expires: the presets people pick most, and Custom (a number of days).
const EXPIRY = [
  { value: "1h", text: "1 hour", body: { expires_in_hours: 1 } },
  { value: "1d", text: "1 day", body: { expires_in_days: 1 } },
  { value: "7d", text: "7 days", body: { expires_in_days: 7 }, selected: true },
  { value: "30d", text: "30 days", body: { expires_in_days: 30 } },
  { value: "custom", text: "Custom…" },
];

// `onChange()`: a link was made or revoked (the list's Shared marks, the Links view).
export function shareDialog({ onChange = () => {} } = {}) {
  let current = null; // what is shared: [{kind, id, name, ...}]
  let opener = null; // what had the focus before: it gets it back on close
  let made = []; // the links made since the dialog opened, for a folder or a selection
  let newest = null; // the link just made: shown once, above the others

  const close = el("button", { type: "button", class: "secondary", "aria-label": "Close", text: "Close", onclick: () => root.close() });
  const fileName = el("p", { id: "share-file", class: "share-file" });
  // The original first: a stranger gets the file as it was sent, not "résumé.pdf.zip"
  // around it; the ZIP is one pick away (it saves space on text, logs and the like).
  const serves = el(
    "select",
    { id: "share-serves" },
    el("option", { value: "original", text: "The original file", selected: true }),
    el("option", { value: "zip", text: "A ZIP archive of it" }),
  );
  const expiry = el("select", { id: "share-expiry", onchange: () => showCustom() }, ...EXPIRY.map(({ value, text, selected }) => el("option", { value, text, selected })));
  const days = el("input", { id: "share-days", type: "number", min: 1, max: 90, value: 7, inputmode: "numeric" }); // `max`: the server's, once the profile says (`limit`)
  const daysField = field("Expires after (days)", days);
  const password = el("input", { id: "share-password", type: "password", autocomplete: "new-password", minlength: 4, maxlength: 1024 });
  const max = el("input", { id: "share-max", type: "number", min: 1, max: 1000000, inputmode: "numeric" });
  const error = el("p", { id: "share-error", class: "error", role: "alert" });
  const submit = el("button", { type: "submit", text: "Create link" });
  const form = el(
    "form",
    { class: "share-form", novalidate: true, onsubmit: create },
    field("Recipients get", serves),
    field("Expires", expiry),
    daysField,
    field("Password (optional)", password),
    field("Download limit (optional)", max),
    error,
    submit,
  );
  const url = el("input", { id: "share-url", type: "text", readonly: true });
  const copyNew = el("button", { type: "button", text: "Copy", onclick: () => copy(url.value, copyNew, url) });
  const freshFacts = el("p", { id: "share-new-facts", class: "share-facts" });
  const revokeNew = el("button", { type: "button", class: "small danger", text: "Revoke", "aria-label": "Revoke this link", onclick: () => revokeNewest() });
  // The QR code's picture, made for each new link (no empty <img> waits in the dialog).
  const qrSlot = el("div", { class: "qr-slot" });
  const fresh = el(
    "div",
    { class: "share-new", hidden: true },
    el("div", { class: "share-new-link" }, el("label", { for: "share-url", text: "New link" }), el("div", { class: "copy-row" }, url, copyNew), freshFacts, revokeNew),
    el("figure", { class: "qr-figure" }, qrSlot, el("figcaption", { class: "muted", text: "Scan it to open the link on a phone." })),
  );
  const linksTitle = el("h3", { id: "share-links-title", text: "Links to this file" });
  const list = el("ul", { id: "share-list", class: "share-list", "aria-labelledby": "share-links-title" });
  const none = el("p", { class: "muted", hidden: true, text: "No other links." });
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

  function showCustom() {
    daysField.hidden = expiry.value !== "custom";
  }

  // `items`: what to share, as the list has them ([{kind, id, name, ...}]).
  function open(items) {
    current = items;
    made = [];
    opener = document.activeElement;
    fileName.textContent = describe(items);
    form.reset();
    showCustom();
    // A folder or selection: each file, and Download all, as it was sent or in its ZIP form.
    serves.options[0].textContent = single() ? "The original file" : "The original files";
    serves.options[1].textContent = single() ? "A ZIP archive of it" : "Compressed files (ZIP)";
    error.textContent = "";
    forgetNewest(); // the last dialog's link is not this one's
    list.replaceChildren();
    root.showModal();
    serves.focus();
    listLinks();
  }

  function forgetNewest() {
    newest = null;
    fresh.hidden = true;
    url.value = "";
    qrSlot.replaceChildren();
    resetCopy(copyNew);
  }

  function showNewest(share) {
    newest = share;
    url.value = share.url;
    freshFacts.replaceChildren(stateBadge(share), ` ${linkFacts(share).join(" · ")}`);
    qrSlot.replaceChildren(el("img", { class: "qr", src: qrPath(share.url), alt: "QR code of the new link", width: 160, height: 160 }));
    resetCopy(copyNew);
    fresh.hidden = false;
  }

  async function revokeNewest() {
    const share = newest;
    try {
      await call("DELETE", `/shares/${share.id}`);
    } catch (failure) {
      error.textContent = `The link could not be revoked: ${failure.message}`;
      return;
    }
    made = made.map((link) => (link.id === share.id ? { ...link, state: "revoked" } : link));
    forgetNewest(); // it goes to the list below, revoked
    announce("Link revoked");
    listLinks();
    onChange();
  }

  function expiryBody() {
    const preset = EXPIRY.find((option) => option.value === expiry.value);
    if (preset?.body) return preset.body;
    return days.value.trim() ? { expires_in_days: Number(days.value.trim()) } : {};
  }

  // A value the server would refuse is refused here, before anything is sent.
  // The bounds are the fields' own (`min`, `max`, `minlength`): one place says them.
  function refusal() {
    const within = (input) =>
      /^[0-9]+$/.test(input.value.trim()) && Number(input.value) >= Number(input.min) && Number(input.value) <= Number(input.max);
    const number = (value) => Number(value).toLocaleString("en");
    if (expiry.value === "custom" && !within(days)) return [days, `A link can last from ${days.min} to ${number(days.max)} days.`];
    if (password.value && password.value.length < password.minLength) {
      return [password, `A link's password needs at least ${password.minLength} characters.`];
    }
    if (max.value.trim() && !within(max)) return [max, `The download limit is a whole number from ${max.min} to ${number(max.max)}.`];
    return null;
  }

  async function create(event) {
    event.preventDefault();
    const refused = refusal();
    if (refused) {
      const [input, message] = refused;
      const before = newest;
      forgetNewest(); // nothing says "Copied" of a link this did not make
      if (before) listLinks();
      error.textContent = message;
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    for (const input of [days, password, max]) input.removeAttribute("aria-invalid");
    const body = { serves: serves.value, ...expiryBody() };
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
      showNewest(share);
      password.value = "";
      copyNew.focus();
      announce("Link created");
      listLinks();
      onChange();
    } catch (failure) {
      // The link shown before is not the one just asked for: nothing says "Copied" now.
      const before = newest;
      forgetNewest();
      error.textContent = `The link could not be made: ${failure.message}`;
      if (before) listLinks(); // the link made before goes to the list, with the others
    } finally {
      submit.disabled = false;
    }
  }

  async function listLinks() {
    const shown = current;
    const others = (links) => links.filter((share) => share.id !== newest?.id); // the new one is above
    linksTitle.textContent = single() ? (newest ? "Other links to this file" : "Links to this file") : "Other links made now";
    if (!single()) {
      // A folder's or a selection's earlier links are in the Links view; here, those made now.
      const rest = others(made);
      list.replaceChildren(...rest.map(item));
      none.hidden = rest.length > 0 || !newest;
      linksTitle.hidden = !newest && made.length === 0;
      return;
    }
    linksTitle.hidden = false;
    try {
      const page = await call("GET", `/files/${shown[0].id}/shares?limit=100`);
      if (shown !== current) return;
      const rest = others(page.items);
      list.replaceChildren(...rest.map(item));
      none.hidden = rest.length > 0;
      none.textContent = newest ? "No other links." : "No links yet.";
    } catch (failure) {
      list.replaceChildren(el("li", { class: "error", text: `The links could not be listed: ${failure.message}` }));
    }
  }

  function item(share) {
    return linkItem(share, {
      label: `Link created ${formatDate(share.created_at)}`,
      onError: (text) => {
        error.textContent = text;
      },
      onRevoked: (revoked) => {
        made = made.map((link) => (link.id === revoked.id ? revoked : link));
        listLinks();
        onChange();
      },
    });
  }

  // `limits` from GET /users/me: the longest a link may last on this server.
  function limit(limits) {
    if (!limits?.share_max_days) return;
    days.max = String(limits.share_max_days);
  }

  return { root, open, limit };
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
