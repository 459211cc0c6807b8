// One row of the file list: the file's name, status, sizes and date, and its actions
// (download, share, rename in place, delete). The list updates it as the file changes.

import { call } from "./api.js";
import { renameForm } from "./rename.js";
import { announce, el, formatBytes, formatDate } from "./ui.js";

export const FINAL = new Set(["ready", "failed"]);
export const STATUS_TEXT = { pending: "Pending", processing: "Processing", ready: "Ready", failed: "Failed" };

// `onShare(file)` opens its share dialog, `onDelete(file)` deletes it (after asking),
// `onError(text)` shows what went wrong above the list, `onSelect(row)` follows its
// checkbox (the selection the list acts on).
export function fileRow(initial, { onShare, onDelete, onError, onSelect }) {
  let file = initial;
  let editing = false; // a rename form in place of the name: an update keeps it as it is
  const check = el("input", { type: "checkbox", class: "select", "aria-label": `Select ${file.name}`, onchange: () => onSelect(row) });
  const nameSlot = el("div", { class: "name-slot" });
  const cells = {
    name: el("td", { class: "name", "data-label": "Name" }, el("div", { class: "name-line" }, check, nameSlot)),
    status: el("td", { class: "status", "data-label": "Status" }),
    size: el("td", { class: "num", "data-label": "Size" }),
    compressed: el("td", { class: "num", "data-label": "Compressed" }),
    created: el("td", { "data-label": "Created" }),
    actions: el("td", { class: "actions" }),
  };
  const root = el("tr", { "data-file-id": file.id }, Object.values(cells));
  const row = {
    root,
    update,
    kind: "file",
    check,
    get item() {
      return file;
    },
    get file() {
      return file;
    },
  };

  function update(next) {
    file = editing ? { ...next, name: file.name } : next;
    if (!editing) nameSlot.replaceChildren(el("span", { class: "file-name", text: file.name }));
    check.setAttribute("aria-label", `Select ${file.name}`);
    cells.status.replaceChildren(el("span", { class: `badge ${file.status}`, text: STATUS_TEXT[file.status] || file.status }));
    if (file.status === "failed" && file.error) cells.status.append(el("span", { class: "file-error", text: file.error }));
    cells.size.textContent = formatBytes(file.size);
    cells.compressed.textContent = file.compressed_size === null ? "—" : formatBytes(file.compressed_size);
    cells.created.replaceChildren(el("time", { datetime: file.created_at, text: formatDate(file.created_at) }));
    if (!editing) fillActions();
  }

  function fillActions() {
    const ready = file.status === "ready";
    const label = (verb) => `${verb} ${file.name}`;
    const shown = file; // what the buttons act on, as it is now
    cells.actions.replaceChildren(
      el("button", { type: "button", class: "small", disabled: !ready, "aria-label": label("Download the ZIP of"), onclick: () => download(shown, "zip") }, "ZIP"),
      el("button", { type: "button", class: "small secondary", disabled: !ready, "aria-label": label("Download the original of"), onclick: () => download(shown, "original") }, "Original"),
      el("button", { type: "button", class: "small secondary", "aria-label": label("Share"), onclick: () => onShare(shown) }, "Share"),
      el("button", { type: "button", class: "small secondary", "aria-label": label("Rename"), onclick: startRename }, "Rename"),
      el("button", { type: "button", class: "small danger", "aria-label": label("Delete"), onclick: () => onDelete(shown) }, "Delete"),
    );
  }

  const focusRename = () => cells.actions.querySelector("button[aria-label^='Rename']")?.focus();

  async function startRename() {
    const form = await renameForm({
      path: `/files/${file.id}`,
      item: file,
      onError,
      onSaved: (renamed) => stopRename(renamed),
      onCancel: (current) => stopRename(current),
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

  // A browser cannot put the Bearer token on a link, and a big file must stream to disk, not
  // through memory: the API hands out a short-lived grant URL for this one file, and the
  // browser simply follows it (its Content-Disposition makes it a download).
  async function download(target, format) {
    try {
      const grant = await call("POST", `/files/${target.id}/download-grants`, { body: { format } });
      const link = el("a", { href: grant.url, download: "", hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      announce(`Downloading ${target.name}`);
    } catch (failure) {
      onError(`${target.name} could not be downloaded: ${failure.message}`);
    }
  }

  update(file);
  return row;
}
