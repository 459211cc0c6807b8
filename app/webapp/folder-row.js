// One folder in the list: its name (a link that opens it) and date, and its actions (download
// as one ZIP, share, rename in place, delete with everything in it). Moving is the
// selection's (selection.js).

import { entryRow } from "./row.js";
import { el, formatDate } from "./ui.js";

export const folderHref = (id) => (id ? `#/folders/${id}` : "#/");

// The callbacks are a row's (row.js), and `onZip(items)` downloads items as one ZIP.
export function folderRow(initial, callbacks) {
  const created = el("td", { "data-label": "Created" });
  return entryRow(initial, {
    ...callbacks,
    kind: "folder",
    resource: (folder) => `/folders/${folder.id}`,
    label: (folder) => `the folder ${folder.name}`,
    nameOf: (folder) => el("a", { class: "folder-name", href: folderHref(folder.id), text: folder.name }),
    cells: [
      el("td", { class: "status kind", "data-label": "Kind", text: "Folder" }),
      el("td", { class: "num empty-cell", "data-label": "Size", text: "—" }),
      el("td", { class: "num empty-cell", "data-label": "Compressed", text: "—" }),
      created,
    ],
    fill(folder) {
      created.replaceChildren(el("time", { datetime: folder.created_at, text: formatDate(folder.created_at) }));
    },
    ownActions: (folder, button) => [button("Download the ZIP of", "ZIP", "", () => callbacks.onZip([{ kind: "folder", ...folder }]))],
  });
}
