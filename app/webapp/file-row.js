// One row of the file list: the file's name, status, sizes and date, and its actions
// (download, share, rename in place, delete). The list updates it as the file changes.

import { call, request } from "./api.js";
import { announce, el, formatBytes, formatDate } from "./ui.js";

export const FINAL = new Set(["ready", "failed"]);
export const STATUS_TEXT = { pending: "Pending", processing: "Processing", ready: "Ready", failed: "Failed" };

// `onShare(file)` opens its share dialog, `onDeleted(fileId)` follows its deletion,
// `onError(text)` shows what went wrong above the list.
export function fileRow(initial, { onShare, onDeleted, onError }) {
  let file = initial;
  let editing = false; // a rename form in place of the name: an update keeps it as it is
  const cells = {
    name: el("td", { class: "name", "data-label": "Name" }),
    status: el("td", { class: "status", "data-label": "Status" }),
    size: el("td", { class: "num", "data-label": "Size" }),
    compressed: el("td", { class: "num", "data-label": "Compressed" }),
    created: el("td", { "data-label": "Created" }),
    actions: el("td", { class: "actions" }),
  };
  const root = el("tr", { "data-file-id": file.id }, Object.values(cells));

  function update(next) {
    file = editing ? { ...next, name: file.name } : next;
    if (!editing) cells.name.replaceChildren(el("span", { class: "file-name", text: file.name }));
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
      el("button", { type: "button", class: "small danger", "aria-label": label("Delete"), onclick: remove }, "Delete"),
    );
  }

  const focusRename = () => cells.actions.querySelector("button[aria-label^='Rename']")?.focus();

  async function startRename() {
    // The version the person starts from: a change made elsewhere meanwhile is a 412, not
    // silently overwritten.
    let etag;
    try {
      const response = await request("GET", `/files/${file.id}`);
      etag = response.headers.get("ETag");
      file = await response.json();
    } catch (failure) {
      onError(`${file.name} could not be renamed: ${failure.message}`);
      return;
    }
    editing = true;
    const inputId = `rename-${file.id}`;
    const input = el("input", { id: inputId, type: "text", value: file.name, maxlength: 255, required: true, "aria-describedby": `${inputId}-error` });
    const error = el("p", { id: `${inputId}-error`, class: "error", role: "alert" });
    const cancel = () => {
      editing = false;
      update(file);
      focusRename();
    };
    const form = el(
      "form",
      { class: "rename" },
      el("label", { for: inputId, class: "visually-hidden", text: `New name for ${file.name}` }),
      input,
      el("button", { type: "submit", class: "small", text: "Save" }),
      el("button", { type: "button", class: "small secondary", text: "Cancel", onclick: cancel }),
      error,
    );
    form.addEventListener("keydown", (event) => {
      if (event.key === "Escape") cancel();
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const name = input.value.trim();
      if (!name || name === file.name) return cancel();
      try {
        const response = await request("PATCH", `/files/${file.id}`, { body: { name }, headers: { "If-Match": etag } });
        editing = false;
        update(await response.json());
        announce(`Renamed to ${name}`);
        focusRename();
      } catch (failure) {
        if (failure.status === 409) {
          error.textContent = `You already have a file named “${name}”. Choose another name.`;
        } else if (failure.status === 412) {
          error.textContent = "This file was changed elsewhere (another tab or device) since you began. Its current name is shown now; rename again if you still want to.";
          try {
            const fresh = await request("GET", `/files/${file.id}`);
            etag = fresh.headers.get("ETag");
            file = await fresh.json();
            input.value = file.name;
          } catch {
            // keep the message; the next poll shows the file as it is
          }
        } else {
          error.textContent = failure.message;
        }
        input.focus();
      }
    });
    cells.name.replaceChildren(form);
    cells.actions.replaceChildren();
    input.focus();
    input.select();
  }

  async function remove() {
    // eslint-disable-next-line no-alert -- a native confirm is keyboard- and screen-reader-friendly
    if (!window.confirm(`Delete “${file.name}”? Its links stop working too. This cannot be undone.`)) return;
    try {
      await call("DELETE", `/files/${file.id}`);
      announce(`${file.name} deleted`);
      onDeleted(file.id);
    } catch (failure) {
      onError(`${file.name} could not be deleted: ${failure.message}`);
    }
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
  return {
    root,
    update,
    get file() {
      return file;
    },
  };
}
