// The file list: a page at a time over the API's cursor, sorted and filtered by the API,
// rows updated in place as files move from pending to ready (or failed) by polling.

import { ApiError, call, request } from "./api.js";
import { openShare } from "./share.js";
import { $, announce, el, formatBytes, formatDate } from "./ui.js";

const PAGE_SIZE = 50;
const POLL_MS = 1000;
const POLL_BATCH = 20; // at most this many files asked about per tick
const FINAL = new Set(["ready", "failed"]);
const STATUS_TEXT = { pending: "Pending", processing: "Processing", ready: "Ready", failed: "Failed" };

const state = { sort: "-created_at", status: "", cursor: null, total: 0, rows: new Map(), generation: 0 };
let pollTimer = null;
let onChange = () => {};

export function initFiles({ changed }) {
  onChange = changed;
  $("sort").addEventListener("change", (event) => {
    state.sort = event.target.value;
    reload();
  });
  $("status-filter").addEventListener("change", (event) => {
    state.status = event.target.value;
    reload();
  });
  $("load-more").addEventListener("click", () => loadPage());
}

export function stopFiles() {
  clearTimeout(pollTimer);
  pollTimer = null;
  state.generation += 1;
  state.rows.clear();
  $("files-body").replaceChildren();
  delete $("app-view").dataset.loaded;
}

export async function reload() {
  stopFiles();
  state.cursor = null;
  await loadPage();
  // A mark for tests and the benchmark (bench/web.py): the list is there and answers.
  $("app-view").dataset.loaded = "true";
  performance.mark("instashare:list-ready");
  schedulePoll();
}

async function loadPage() {
  const generation = state.generation;
  const query = new URLSearchParams({ limit: String(PAGE_SIZE), sort: state.sort });
  if (state.status) query.set("status", state.status);
  if (state.cursor) query.set("cursor", state.cursor);
  const more = $("load-more");
  more.disabled = true;
  try {
    const page = await call("GET", `/files?${query}`);
    if (generation !== state.generation) return; // the sort or filter changed meanwhile
    for (const file of page.items) upsert(file, false);
    state.cursor = page.next_cursor;
    state.total = page.total;
    showError("");
  } catch (error) {
    showError(`The files could not be listed: ${error.message}`);
  } finally {
    more.disabled = false;
    renderFooter();
  }
}

// A file just uploaded: shown at once (first, in the default order) if the filter takes it.
export async function added(fileId) {
  try {
    const file = await call("GET", `/files/${fileId}`);
    if (state.status && file.status !== state.status) return;
    if (!state.rows.has(file.id)) state.total += 1;
    upsert(file, state.sort === "-created_at");
    renderFooter();
    schedulePoll();
  } catch {
    // it will show on the next listing
  }
}

function renderFooter() {
  const shown = state.rows.size;
  $("files-count").textContent = shown
    ? `Showing ${shown} of ${state.total} file${state.total === 1 ? "" : "s"}`
    : "";
  $("files-empty").hidden = shown > 0;
  $("files-empty").textContent = state.status
    ? `No ${STATUS_TEXT[state.status].toLowerCase()} files.`
    : "No files yet. Drop some above.";
  $("files").hidden = shown === 0;
  $("load-more").hidden = !state.cursor;
}

function showError(text) {
  $("files-error").textContent = text;
}

function schedulePoll() {
  if (pollTimer !== null) return;
  pollTimer = setTimeout(poll, POLL_MS);
}

async function poll() {
  pollTimer = null;
  const generation = state.generation;
  const waiting = [...state.rows.values()].filter((row) => !FINAL.has(row.file.status)).slice(0, POLL_BATCH);
  if (waiting.length === 0) return;
  await Promise.all(
    waiting.map(async (row) => {
      try {
        const file = await call("GET", `/files/${row.file.id}`);
        if (generation !== state.generation) return;
        if (file.status !== row.file.status) {
          announce(
            file.status === "failed"
              ? `${file.name} failed: ${file.error || "unknown error"}`
              : `${file.name} is ${STATUS_TEXT[file.status].toLowerCase()}`,
          );
          if (FINAL.has(file.status)) onChange();
        }
        upsert(file, false);
      } catch (error) {
        if (error instanceof ApiError && error.status === 404) removeRow(row.file.id);
      }
    }),
  );
  if (generation === state.generation) schedulePoll();
}

function upsert(file, first) {
  const existing = state.rows.get(file.id);
  if (existing) {
    if (existing.editing) {
      existing.file = { ...file, name: existing.file.name };
      fillCells(existing, { keepName: true });
    } else {
      existing.file = file;
      fillCells(existing, {});
    }
    return;
  }
  const row = { file, editing: false, tr: el("tr", { "data-file-id": file.id }) };
  row.cells = {
    name: el("td", { class: "name", "data-label": "Name" }),
    status: el("td", { class: "status", "data-label": "Status" }),
    size: el("td", { class: "num", "data-label": "Size" }),
    compressed: el("td", { class: "num", "data-label": "Compressed" }),
    created: el("td", { "data-label": "Created" }),
    actions: el("td", { class: "actions" }),
  };
  row.tr.append(...Object.values(row.cells));
  state.rows.set(file.id, row);
  fillCells(row, {});
  const body = $("files-body");
  if (first) body.prepend(row.tr);
  else body.append(row.tr);
}

function removeRow(fileId) {
  const row = state.rows.get(fileId);
  if (!row) return;
  row.tr.remove();
  state.rows.delete(fileId);
  state.total = Math.max(0, state.total - 1);
  renderFooter();
}

function fillCells(row, { keepName }) {
  const { file, cells } = row;
  if (!keepName) cells.name.replaceChildren(el("span", { class: "file-name", text: file.name }));
  const badge = el("span", { class: `badge ${file.status}`, text: STATUS_TEXT[file.status] || file.status });
  cells.status.replaceChildren(badge);
  if (file.status === "failed" && file.error) cells.status.append(el("span", { class: "file-error", text: file.error }));
  cells.size.textContent = formatBytes(file.size);
  cells.compressed.textContent = file.compressed_size === null ? "—" : formatBytes(file.compressed_size);
  cells.created.replaceChildren(el("time", { datetime: file.created_at, text: formatDate(file.created_at) }));
  if (!row.editing) fillActions(row);
}

function fillActions(row) {
  const { file } = row;
  const ready = file.status === "ready";
  const label = (verb) => `${verb} ${file.name}`;
  row.cells.actions.replaceChildren(
    el("button", { type: "button", class: "small", disabled: !ready, "aria-label": label("Download the ZIP of"), onclick: () => download(file, "zip") }, "ZIP"),
    el("button", { type: "button", class: "small secondary", disabled: !ready, "aria-label": label("Download the original of"), onclick: () => download(file, "original") }, "Original"),
    el("button", { type: "button", class: "small secondary", "aria-label": label("Share"), onclick: () => openShare(file) }, "Share"),
    el("button", { type: "button", class: "small secondary", "aria-label": label("Rename"), onclick: () => startRename(row) }, "Rename"),
    el("button", { type: "button", class: "small danger", "aria-label": label("Delete"), onclick: () => remove(row) }, "Delete"),
  );
}

// A browser cannot put the Bearer token on a link, and a big file must stream to disk, not
// through memory: the API hands out a short-lived grant URL for this one file, and the
// browser simply follows it (its Content-Disposition makes it a download).
async function download(file, format) {
  try {
    const grant = await call("POST", `/files/${file.id}/download-grants`, { body: { format } });
    const link = el("a", { href: grant.url, download: "", hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    announce(`Downloading ${file.name}`);
  } catch (error) {
    showError(`${file.name} could not be downloaded: ${error.message}`);
  }
}

async function startRename(row) {
  // The version the person starts from: a change made elsewhere meanwhile is a 412, not
  // silently overwritten.
  let etag;
  try {
    const response = await request("GET", `/files/${row.file.id}`);
    etag = response.headers.get("ETag");
    row.file = await response.json();
  } catch (error) {
    showError(`${row.file.name} could not be renamed: ${error.message}`);
    return;
  }
  row.editing = true;
  const inputId = `rename-${row.file.id}`;
  const input = el("input", { id: inputId, type: "text", value: row.file.name, maxlength: 255, required: true, "aria-describedby": `${inputId}-error` });
  const error = el("p", { id: `${inputId}-error`, class: "error", role: "alert" });
  const cancel = () => {
    row.editing = false;
    fillCells(row, {});
    row.cells.actions.querySelector("button[aria-label^='Rename']")?.focus();
  };
  const form = el(
    "form",
    { class: "rename" },
    el("label", { for: inputId, class: "visually-hidden", text: `New name for ${row.file.name}` }),
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
    if (!name || name === row.file.name) return cancel();
    try {
      const response = await request("PATCH", `/files/${row.file.id}`, { body: { name }, headers: { "If-Match": etag } });
      row.editing = false;
      upsert(await response.json(), false);
      announce(`Renamed to ${name}`);
      row.cells.actions.querySelector("button[aria-label^='Rename']")?.focus();
    } catch (failure) {
      if (failure.status === 409) {
        error.textContent = `You already have a file named “${name}”. Choose another name.`;
      } else if (failure.status === 412) {
        error.textContent = "This file was changed elsewhere (another tab or device) since you began. Its current name is shown now; rename again if you still want to.";
        try {
          const fresh = await request("GET", `/files/${row.file.id}`);
          etag = fresh.headers.get("ETag");
          row.file = await fresh.json();
          input.value = row.file.name;
        } catch {
          // keep the message; the next poll shows the file as it is
        }
      } else {
        error.textContent = failure.message;
      }
      input.focus();
    }
  });
  row.cells.name.replaceChildren(form);
  row.cells.actions.replaceChildren();
  input.focus();
  input.select();
}

async function remove(row) {
  // eslint-disable-next-line no-alert -- a native confirm is keyboard- and screen-reader-friendly
  if (!window.confirm(`Delete “${row.file.name}”? Its links stop working too. This cannot be undone.`)) return;
  try {
    await call("DELETE", `/files/${row.file.id}`);
    announce(`${row.file.name} deleted`);
    removeRow(row.file.id);
    onChange();
  } catch (error) {
    showError(`${row.file.name} could not be deleted: ${error.message}`);
  }
}
