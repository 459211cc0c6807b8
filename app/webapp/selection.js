// The bar above the list: "Select all", and once something is chosen what can be done with
// it all at once (download as one ZIP, share as one link, move into a folder, delete).

import { el } from "./ui.js";

// `onSelectAll(checked)` follows the "Select all" box; `onZip()`, `onShare()`, `onMove()`,
// `onDelete()` and `onClear()` act on the list's selection.
export function selectionBar({ onSelectAll, onZip, onShare, onMove, onDelete, onClear }) {
  const all = el("input", { id: "select-all", type: "checkbox", onchange: () => onSelectAll(all.checked) });
  const summary = el("span", { id: "selection-count", class: "selection-count" });
  const actions = el(
    "div",
    { class: "selection-actions", hidden: true },
    el("button", { type: "button", class: "small", onclick: () => onZip() }, "Download as ZIP"),
    el("button", { type: "button", class: "small secondary", onclick: () => onShare() }, "Share"),
    el("button", { type: "button", class: "small secondary", onclick: () => onMove() }, "Move to…"),
    el("button", { type: "button", class: "small danger", onclick: () => onDelete() }, "Delete"),
    el("button", { type: "button", class: "small secondary", onclick: () => onClear() }, "Clear selection"),
  );
  const root = el(
    "div",
    { class: "selection", role: "group", "aria-label": "Selection" },
    el("div", { class: "select-all" }, all, el("label", { for: "select-all", text: "Select all" })),
    summary,
    actions,
  );

  // `chosen` of `shown` rows are selected, `what` they are in words.
  function show(chosen, shown, what) {
    all.checked = shown > 0 && chosen === shown;
    all.indeterminate = chosen > 0 && chosen < shown;
    root.hidden = shown === 0; // nothing to select in an empty folder
    actions.hidden = chosen === 0;
    summary.textContent = chosen ? `${what} selected` : "";
  }

  show(0, 0, "");
  return { root, show };
}
