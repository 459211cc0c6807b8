// One row of the file list: the file's thumbnail (or type badge) and name, status, sizes and
// date, and its actions (download, share, rename in place, delete). The list updates it as
// the file changes.

import { call } from "./api.js";
import { entryRow } from "./row.js";
import { leadingPicture } from "./thumbnail.js";
import { announce, el, followDownload, formatBytes, formatDate } from "./ui.js";

export const FINAL = new Set(["ready", "failed"]);
export const STATUS_TEXT = { pending: "Pending", processing: "Processing", ready: "Ready", failed: "Failed" };

// The callbacks are a row's (row.js); `row.file` is the file as the row shows it now.
export function fileRow(initial, callbacks) {
  const cells = {
    status: el("td", { class: "status", "data-label": "Status" }),
    size: el("td", { class: "num", "data-label": "Size" }),
    compressed: el("td", { class: "num", "data-label": "Compressed" }),
    created: el("td", { "data-label": "Created" }),
  };
  const picture = leadingPicture();
  const row = entryRow(initial, {
    ...callbacks,
    kind: "file",
    resource: (file) => `/files/${file.id}`,
    label: (file) => file.name,
    nameOf: (file) => el("span", { class: "file-line" }, picture(file), el("span", { class: "file-name", text: file.name })),
    cells: Object.values(cells),
    fill(file) {
      cells.status.replaceChildren(el("span", { class: `badge ${file.status}`, text: STATUS_TEXT[file.status] || file.status }));
      if (file.status === "failed" && file.error) cells.status.append(el("span", { class: "file-error", text: file.error }));
      cells.size.textContent = formatBytes(file.size);
      cells.compressed.textContent = file.compressed_size === null ? "—" : formatBytes(file.compressed_size);
      cells.created.replaceChildren(el("time", { datetime: file.created_at, text: formatDate(file.created_at) }));
    },
    ownActions(file, button) {
      const ready = file.status === "ready";
      return [
        // The file as it was uploaded first (what a person wants back); its ZIP one step away.
        button("Download the original of", "Download", "", () => download(file, "original"), !ready),
        button("Download the ZIP of", "ZIP", "secondary", () => download(file, "zip"), !ready),
      ];
    },
  });

  // A browser cannot put the Bearer token on a link, and a big file must stream to disk, not
  // through memory: the API hands out a short-lived grant URL for this one file, and the
  // browser simply follows it (its Content-Disposition makes it a download).
  async function download(target, format) {
    try {
      const grant = await call("POST", `/files/${target.id}/download-grants`, { body: { format } });
      followDownload(grant.url);
      announce(`Downloading ${target.name}`);
    } catch (failure) {
      callbacks.onError(`${target.name} could not be downloaded: ${failure.message}`);
    }
  }

  return Object.defineProperty(row, "file", { get: () => row.item });
}
