// The Links view (#/links): every link of the account, newest first, a page at a time
// (GET /shares): what each shares, its state (active, expired, used up, revoked), its
// downloads and expiry, Copy, and Revoke while it works.

import { call } from "./api.js";
import { STATE_TEXT, linkItem } from "./link-item.js";
import { count, el, foldersAndFiles } from "./ui.js";

const PAGE_SIZE = 50;

// `onChange()`: a link was revoked (the files list's Shared marks).
export function linksView({ onChange = () => {} } = {}) {
  let cursor = null;
  let generation = 0;
  let shown = new Map(); // id -> share, as listed

  const title = el("h2", { id: "links-title", tabindex: -1, text: "Your links" });
  const summary = el("p", { id: "links-count", class: "muted" });
  const error = el("p", { id: "links-error", class: "error", role: "alert" });
  const list = el("ul", { id: "links-list", class: "share-list links-list", "aria-labelledby": "links-title" });
  const empty = el("p", { id: "links-empty", class: "muted", hidden: true, text: "No links yet. Share a file or a folder to make one." });
  const more = el("button", { type: "button", class: "secondary", hidden: true, text: "Show more links", onclick: () => load() });
  const root = el("section", { id: "links-view", class: "card links", "aria-labelledby": "links-title", hidden: true }, title, summary, error, list, empty, more);
  let total = 0;

  async function open({ focus = true } = {}) {
    generation += 1;
    cursor = null;
    shown = new Map();
    list.replaceChildren();
    error.textContent = "";
    root.hidden = false;
    if (focus) title.focus();
    await load();
  }

  async function load() {
    const asked = generation;
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (cursor) query.set("cursor", cursor);
    more.disabled = true;
    try {
      const page = await call("GET", `/shares?${query}`);
      if (asked !== generation) return;
      for (const share of page.items) {
        shown.set(share.id, share);
        list.append(item(share));
      }
      cursor = page.next_cursor;
      total = page.total;
      render();
    } catch (failure) {
      error.textContent = `Your links could not be listed: ${failure.message}`;
    } finally {
      more.disabled = false;
    }
  }

  function render() {
    const states = {};
    for (const share of shown.values()) states[share.state] = (states[share.state] || 0) + 1;
    const parts = Object.keys(STATE_TEXT)
      .filter((state) => states[state])
      .map((state) => `${states[state]} ${STATE_TEXT[state].toLowerCase()}`);
    const of = shown.size < total ? `Showing ${shown.size} of ${count(total, "link")}` : count(total, "link");
    summary.textContent = total ? `${of}${parts.length ? `: ${parts.join(", ")}` : ""}` : "";
    empty.hidden = total > 0;
    more.hidden = !cursor;
  }

  function item(share) {
    const what = sharedThing(share);
    return linkItem(share, {
      label: `Link to ${what}`,
      more: [el("p", { class: "link-what" }, el("span", { class: "link-name", text: what }))],
      onError: (text) => {
        error.textContent = text;
      },
      onRevoked: (revoked) => {
        shown.set(revoked.id, revoked);
        list.querySelector(`[data-share-id="${revoked.id}"]`)?.replaceWith(item(revoked));
        render();
        onChange();
      },
    });
  }

  return {
    root,
    open,
    close() {
      generation += 1;
      root.hidden = true;
    },
  };
}

// What a link shares, in words: the file's or the folder's name, or what a selection holds.
function sharedThing(share) {
  const items = share.items || [];
  if (items.length === 0) return share.kind === "folder" ? "a deleted folder" : "deleted files";
  if (items.length === 1) return items[0].kind === "folder" ? `the folder ${items[0].name}` : items[0].name;
  const names = items.slice(0, 3).map((entry) => entry.name);
  const rest = items.length > 3 ? ` and ${count(items.length - 3, "more", "more")}` : "";
  return `${foldersAndFiles(items)}: ${names.join(", ")}${rest}`;
}
