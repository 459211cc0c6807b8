// The move dialog: browse the folders (from where the items are), pick one, move the
// selection into it. A folder being moved cannot be opened (nothing moves into itself; the
// API refuses that too, with its own sentence, should another tab try).

import { ApiError, call } from "./api.js";
import { ROOT_NAME, breadcrumbs } from "./breadcrumbs.js";
import { announce, count, el } from "./ui.js";

const FOLDERS_PAGE = 100;

export function moveDialog() {
  let items = []; // what is moved: [{kind, id, name}]
  let here = null; // the folder shown (null: the root)
  let from = null; // where the items are now
  let cursor = null;
  let generation = 0;
  let opener = null;
  let moved = [];
  let resolve = () => {};

  const title = el("h2", { id: "move-title", text: "Move" });
  const close = el("button", { type: "button", class: "secondary", text: "Close", onclick: () => root.close() });
  const crumbs = breadcrumbs({ label: "Folder to move into", onOpen: browse });
  const list = el("ul", { class: "folder-choices", "aria-label": "Folders here" });
  const none = el("p", { class: "muted", hidden: true, text: "No folders in here." });
  const more = el("button", { type: "button", class: "secondary small", hidden: true, text: "More folders", onclick: () => loadFolders() });
  const error = el("p", { id: "move-error", class: "error", role: "alert" });
  const submit = el("button", { type: "button", id: "move-here", onclick: moveHere });
  const root = el(
    "dialog",
    { class: "dialog", "aria-labelledby": "move-title" },
    el("div", { class: "dialog-head" }, title, close),
    el("p", { class: "muted move-hint", text: "Open the folder to move into, then press “Move to” below." }),
    crumbs.root,
    list,
    none,
    more,
    error,
    el("div", { class: "dialog-foot" }, submit),
  );
  root.addEventListener("close", () => {
    generation += 1;
    opener?.focus();
    resolve(moved);
  });

  // Resolves, once the dialog closes, to the items moved out of `fromFolderId`.
  function open(chosen, fromFolderId) {
    items = chosen;
    from = fromFolderId;
    moved = [];
    opener = document.activeElement;
    title.textContent = items.length === 1 ? `Move “${items[0].name}”` : `Move ${count(items.length, "item")}`;
    error.textContent = "";
    root.showModal();
    browse(fromFolderId);
    return new Promise((done) => {
      resolve = done;
    });
  }

  async function browse(folderId) {
    here = folderId;
    cursor = null;
    generation += 1;
    list.replaceChildren();
    error.textContent = "";
    render();
    await loadFolders();
    // "Move to …" once it can be pressed; before that (where the items are now), a folder.
    (submit.disabled ? list.querySelector("button:not(:disabled)") || close : submit).focus();
  }

  async function loadFolders() {
    const mine = generation;
    const query = new URLSearchParams({ limit: String(FOLDERS_PAGE), sort: "name" });
    if (here) query.set("folder_id", here);
    if (cursor) query.set("cursor", cursor);
    try {
      const page = await call("GET", `/entries?${query}`);
      if (mine !== generation) return;
      if (!cursor) crumbs.show(page.folder, page.ancestors);
      const folders = page.items.filter((entry) => entry.kind === "folder");
      list.append(...folders.map(choice));
      // Folders come first: once a file shows, there are no more folders to page through.
      cursor = folders.length === page.items.length ? page.next_cursor : null;
    } catch (failure) {
      if (mine === generation) error.textContent = `The folders could not be listed: ${failure.message}`;
    }
    render();
  }

  function choice(folder) {
    const moving = items.some((item) => item.kind === "folder" && item.id === folder.id);
    return el(
      "li",
      {},
      el(
        "button",
        { type: "button", class: "folder-choice", disabled: moving, onclick: () => browse(folder.id) },
        folder.name,
        moving ? el("span", { class: "muted", text: " (being moved)" }) : null,
      ),
    );
  }

  function render() {
    none.hidden = list.childElementCount > 0;
    more.hidden = !cursor;
    const place = crumbs.root.querySelector("[aria-current]")?.textContent || ROOT_NAME;
    submit.textContent = `Move to ${place}`;
    submit.disabled = here === from;
  }

  async function moveHere() {
    submit.disabled = true;
    const failed = [];
    for (const item of items) {
      if (moved.includes(item)) continue;
      const body = item.kind === "folder" ? { parent_id: here } : { folder_id: here };
      try {
        await call("PATCH", `/${item.kind}s/${item.id}`, { body });
        moved.push(item);
      } catch (failure) {
        const why = failure instanceof ApiError && failure.status === 404 ? "it does not exist any more" : failure.message;
        failed.push(`${item.name}: ${why}`);
      }
    }
    const place = crumbs.root.querySelector("[aria-current]")?.textContent || ROOT_NAME;
    if (failed.length === 0) {
      announce(`${count(moved.length, "item")} moved to ${place}`);
      root.close();
      return;
    }
    error.textContent = `${count(moved.length, "item")} moved; ${count(failed.length, "item")} could not be. ${failed.join(" ")}`;
    submit.disabled = false;
  }

  return { root, open };
}
