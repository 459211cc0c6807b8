// The file list: a page at a time over the API's cursor, sorted and filtered by the API,
// rows updated in place as files move from pending to ready (or failed) by polling.

import { ApiError, call } from "./api.js";
import { FINAL, STATUS_TEXT, fileRow } from "./file-row.js";
import { announce, el } from "./ui.js";

const PAGE_SIZE = 50;
const POLL_MS = 1000;
const POLL_BATCH = 20; // at most this many files asked about per tick
const SORTS = { "-created_at": "Newest first", created_at: "Oldest first", name: "Name A–Z", "-name": "Name Z–A" };

// `onShare(file)` opens its share dialog, `onChange()` follows a change to the usage (a file
// deleted, or done), `onListed(listed)` says whether the first page is there.
export function fileList({ onShare, onChange, onListed }) {
  const state = { sort: "-created_at", status: "", cursor: null, total: 0, rows: new Map(), generation: 0 };
  let pollTimer = null;

  const options = (labels) => Object.entries(labels).map(([value, text]) => el("option", { value, text }));
  const select = (id, label, labels, key) => {
    const change = (event) => {
      state[key] = event.target.value;
      reload();
    };
    return el("div", { class: "field inline" }, el("label", { for: id, text: label }), el("select", { id, onchange: change }, options(labels)));
  };
  const notice = el("p", { id: "files-error", class: "error", role: "alert" });
  const body = el("tbody", { id: "files-body" });
  const th = (text, className) => el("th", { scope: "col", class: className, text });
  const table = el(
    "table",
    { id: "files", class: "files" },
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        [th("Name"), th("Status"), th("Size", "num"), th("Compressed", "num"), th("Created")],
        el("th", { scope: "col" }, el("span", { class: "visually-hidden", text: "Actions" })),
      ),
    ),
    body,
  );
  const count = el("p", { id: "files-count", class: "files-count" });
  const empty = el("p", { id: "files-empty", class: "muted empty", hidden: true, text: "No files yet. Drop some above." });
  const more = el("button", { type: "button", class: "secondary load-more", hidden: true, text: "Load more", onclick: () => loadPage() });
  const root = el(
    "section",
    { class: "card", "aria-labelledby": "files-title" },
    el(
      "div",
      { class: "files-head" },
      el("h2", { id: "files-title", text: "Files" }),
      el(
        "div",
        { class: "controls" },
        select("sort", "Sort", SORTS, "sort"),
        select("status-filter", "Status", { "": "All", ...STATUS_TEXT }, "status"),
      ),
    ),
    notice,
    table,
    count,
    empty,
    more,
  );

  function stop() {
    clearTimeout(pollTimer);
    pollTimer = null;
    state.generation += 1;
    state.rows.clear();
    body.replaceChildren();
    onListed(false);
  }

  async function reload() {
    stop();
    state.cursor = null;
    await loadPage();
    onListed(true);
    // A mark for the benchmark (bench/web.py): the list is there and answers.
    performance.mark("instashare:list-ready");
    schedulePoll();
  }

  async function loadPage() {
    const generation = state.generation;
    const query = new URLSearchParams({ limit: String(PAGE_SIZE), sort: state.sort });
    if (state.status) query.set("status", state.status);
    if (state.cursor) query.set("cursor", state.cursor);
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
  async function added(fileId) {
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
    count.textContent = shown ? `Showing ${shown} of ${state.total} file${state.total === 1 ? "" : "s"}` : "";
    empty.hidden = shown > 0;
    empty.textContent = state.status ? `No ${STATUS_TEXT[state.status].toLowerCase()} files.` : "No files yet. Drop some above.";
    table.hidden = shown === 0;
    more.hidden = !state.cursor;
  }

  function showError(text) {
    notice.textContent = text;
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
      existing.update(file);
      return;
    }
    const row = fileRow(file, { onShare, onDeleted, onError: showError });
    state.rows.set(file.id, row);
    if (first) body.prepend(row.root);
    else body.append(row.root);
  }

  function onDeleted(fileId) {
    removeRow(fileId);
    onChange();
  }

  function removeRow(fileId) {
    const row = state.rows.get(fileId);
    if (!row) return;
    row.root.remove();
    state.rows.delete(fileId);
    state.total = Math.max(0, state.total - 1);
    renderFooter();
  }

  return { root, reload, stop, added };
}
