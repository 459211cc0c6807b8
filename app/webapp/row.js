// What a file's row and a folder's have in common: a box to select it, its name (a form in
// its place while it is renamed), the cells its kind shows, and its actions, the kind's own
// first, then Share, Rename and Delete (on a phone: the first, and the rest behind "More").

import { renameInPlace } from "./rename.js";
import { el } from "./ui.js";

// `kind` "file" or "folder"; `resource(item)` its API path; `label(item)` how the buttons
// name it ("report.pdf", "the folder trip"); `nameOf(item)` the name's element; `cells` the
// kind's other cells (before the actions), filled by `fill(item)`; `ownActions(item, button)`
// its first buttons (`button(verb, text, className, onclick, disabled)` makes one).
// `onShare(item)`, `onDelete(item)` (after asking), `onError(text)` above the list,
// `onSelect(row)` when its box changes.
export function entryRow(initial, { kind, resource, label, nameOf, cells, fill, ownActions = () => [], onShare, onDelete, onError, onSelect }) {
  let item = initial;
  let editing = false; // a rename form in place of the name: an update keeps it as it is
  const check = el("input", { type: "checkbox", class: "select", onchange: () => onSelect(row) });
  const nameSlot = el("div", { class: "name-slot" });
  const actions = el("td", { class: "actions" });
  const nameCell = el("td", { class: "name", "data-label": "Name" }, el("div", { class: "name-line" }, check, nameSlot));
  const root = el("tr", { class: kind, [`data-${kind}-id`]: item.id }, nameCell, cells, actions);
  const startRename = renameInPlace({
    path: resource,
    current: () => item,
    slot: nameSlot,
    actions,
    onError,
    setEditing: (on) => {
      editing = on;
    },
    update,
  });

  function update(next) {
    // GET /files/{id} (a poll) has no `shared`: the mark stays as the last listing said.
    const marked = { ...next, shared: next.shared ?? item.shared ?? false };
    item = editing ? { ...marked, name: item.name } : marked;
    check.setAttribute("aria-label", `Select ${label(item)}`);
    fill(item);
    if (editing) return;
    // A working link shares it (GET /entries' `shared`): the Links view has the details.
    nameSlot.replaceChildren(nameOf(item), item.shared ? el("span", { class: "badge shared", text: "Shared" }) : "");
    const shown = item; // what the buttons act on, as it is now
    const button = (verb, text, className, onclick, disabled = false) =>
      el("button", { type: "button", class: `small ${className}`, disabled, "aria-label": `${verb} ${label(shown)}`, onclick }, text);
    const [primary, ...others] = [
      ...ownActions(shown, button),
      button("Share", "Share", "secondary", () => onShare(shown)),
      button("Rename", "Rename", "secondary", startRename),
      button("Delete", "Delete", "danger", () => onDelete(shown)),
    ];
    // On a phone the first action stands alone and the rest wait behind "More"; on a wider
    // screen they all show in a row (app.css: `.more` is `display: contents` there).
    const more = el("span", { class: "more", id: `more-${kind}-${shown.id}` }, ...others);
    const toggle = el("button", {
      type: "button",
      class: "small secondary more-toggle",
      "aria-expanded": "false",
      "aria-controls": more.id,
      "aria-label": `More actions for ${label(shown)}`,
      onclick: () => {
        const open = !actions.classList.contains("open");
        actions.classList.toggle("open", open);
        toggle.setAttribute("aria-expanded", String(open));
      },
    }, "More");
    for (const action of others) action.addEventListener("click", () => {
      actions.classList.remove("open");
      toggle.setAttribute("aria-expanded", "false");
    });
    actions.classList.remove("open");
    actions.replaceChildren(primary, toggle, more);
  }

  const row = {
    root,
    update,
    kind,
    check,
    get item() {
      return item;
    },
  };
  update(item);
  return row;
}
