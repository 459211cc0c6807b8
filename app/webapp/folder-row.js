// One folder in the list: its name (a link that opens it), its date, and its actions (share,
// rename in place, delete with everything in it). Moving is the selection's (selection.js).

import { renameForm } from "./rename.js";
import { el, formatDate } from "./ui.js";

export const folderHref = (id) => (id ? `#/folders/${id}` : "#/");

// `onShare(folder)` opens its share dialog, `onDelete(folder)` deletes it (after asking),
// `onError(text)` shows what went wrong above the list, `onSelect(row)` follows its checkbox.
export function folderRow(initial, { onShare, onDelete, onError, onSelect }) {
  let folder = initial;
  let editing = false;
  const check = el("input", { type: "checkbox", class: "select", onchange: () => onSelect(row) });
  const nameSlot = el("div", { class: "name-slot" });
  const cells = {
    name: el("td", { class: "name", "data-label": "Name" }, el("div", { class: "name-line" }, check, nameSlot)),
    status: el("td", { class: "status kind", "data-label": "Kind", text: "Folder" }),
    size: el("td", { class: "num empty-cell", "data-label": "Size", text: "—" }),
    compressed: el("td", { class: "num empty-cell", "data-label": "Compressed", text: "—" }),
    created: el("td", { "data-label": "Created" }),
    actions: el("td", { class: "actions" }),
  };
  const root = el("tr", { class: "folder", "data-folder-id": folder.id }, Object.values(cells));
  const row = {
    root,
    update,
    kind: "folder",
    check,
    get item() {
      return folder;
    },
  };

  function update(next) {
    folder = editing ? { ...next, name: folder.name } : next;
    check.setAttribute("aria-label", `Select the folder ${folder.name}`);
    if (!editing) {
      nameSlot.replaceChildren(el("a", { class: "folder-name", href: folderHref(folder.id), text: folder.name }));
      fillActions();
    }
    cells.created.replaceChildren(el("time", { datetime: folder.created_at, text: formatDate(folder.created_at) }));
  }

  function fillActions() {
    const label = (verb) => `${verb} the folder ${folder.name}`;
    const shown = folder;
    cells.actions.replaceChildren(
      el("button", { type: "button", class: "small secondary", "aria-label": label("Share"), onclick: () => onShare(shown) }, "Share"),
      el("button", { type: "button", class: "small secondary", "aria-label": label("Rename"), onclick: startRename }, "Rename"),
      el("button", { type: "button", class: "small danger", "aria-label": label("Delete"), onclick: () => onDelete(shown) }, "Delete"),
    );
  }

  const focusRename = () => cells.actions.querySelector("button[aria-label^='Rename']")?.focus();

  async function startRename() {
    const form = await renameForm({
      path: `/folders/${folder.id}`,
      item: folder,
      onError,
      onSaved: stopRename,
      onCancel: stopRename,
    });
    if (!form) return;
    editing = true;
    nameSlot.replaceChildren(form);
    cells.actions.replaceChildren();
    form.start();
  }

  function stopRename(current) {
    editing = false;
    update(current);
    focusRename();
  }

  update(folder);
  return row;
}
