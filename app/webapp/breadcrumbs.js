// Where a list is: "All files › photos › 2024", each ancestor a way back to it. On the page
// they are links (the address says which folder is open); in the move dialog, which browses
// folders without leaving the page, they are buttons (`onOpen(folderId)`).

import { folderHref } from "./folder-row.js";
import { el } from "./ui.js";

export const ROOT_NAME = "All files";

export function breadcrumbs({ label = "Folders", onOpen = null } = {}) {
  const list = el("ol", { class: "crumbs" });
  const root = el("nav", { class: "breadcrumbs", "aria-label": label }, list);

  const step = (id, name) =>
    el("li", {}, onOpen ? el("button", { type: "button", class: "link", text: name, onclick: () => onOpen(id) }) : el("a", { href: folderHref(id), text: name }));

  // `ancestors` root-most first, as GET /entries gives them; `folder` null at the root.
  function show(folder, ancestors = []) {
    const here = el("li", {}, el("span", { "aria-current": "location", text: folder ? folder.name : ROOT_NAME }));
    list.replaceChildren(...(folder ? [step(null, ROOT_NAME), ...ancestors.map((a) => step(a.id, a.name))] : []), here);
    // At the root the page's heading says it all: a one-step trail would only repeat it.
    root.hidden = !folder && !onOpen;
  }

  show(null);
  return { root, show };
}
