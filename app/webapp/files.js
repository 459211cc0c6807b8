// The list of one folder: its subfolders then its files, a page at a time over the API's
// cursor (GET /entries), sorted by the API, with the breadcrumb of where it is, a form for a
// new folder, and a selection to download as one ZIP, share, move or delete at once. File
// rows update in place as files move from pending to ready (or failed) by polling.

import { ApiError, call } from "./api.js";
import { ROOT_NAME, breadcrumbs } from "./breadcrumbs.js";
import { FINAL, STATUS_TEXT, fileRow } from "./file-row.js";
import { folderHref, folderRow } from "./folder-row.js";
import { selectionBar } from "./selection.js";
import { announce, count, el, field, followDownload, foldersAndFiles } from "./ui.js";

const PAGE_SIZE = 50;
const POLL_MS = 1000;
const POLL_BATCH = 20; // at most this many files asked about one by one per tick
const FEW_WAITING = 5; // more files than this on their way: the first page is asked for first
const SORTS = {
  "-created_at": "Newest first",
  created_at: "Oldest first",
  name: "Name A–Z",
  "-name": "Name Z–A",
};
const key = (kind, id) => `${kind}:${id}`;

// `onShare(target)` opens the share dialog for {kind, items}, `onMove(items, from)` resolves
// once they are moved (or not), `onChange()` follows a change to the usage (something
// deleted, or done), `onListed(listed)` says whether the first page is there, `onOpened(folder)`
// follows a move to another folder (null: the root).
export function fileList({ onShare, onMove, onChange, onListed, onOpened }) {
  const state = { folderId: null, sort: "-created_at", status: "", cursor: null, total: 0, rows: new Map(), generation: 0 };
  const selected = new Map(); // key -> row
  let pollTimer = null;

  const options = (labels) => Object.entries(labels).map(([value, text]) => el("option", { value, text }));
  const select = (id, label, labels, name) => {
    const change = (event) => {
      state[name] = event.target.value;
      reload();
    };
    return el("div", { class: "field inline" }, el("label", { for: id, text: label }), el("select", { id, onchange: change }, options(labels)));
  };
  const crumbs = breadcrumbs();
  const title = el("h2", { id: "files-title", tabindex: -1, text: ROOT_NAME });
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
  const countLine = el("p", { id: "files-count", class: "files-count" });
  const empty = el("p", { id: "files-empty", class: "muted empty", hidden: true });
  const more = el("button", { type: "button", class: "secondary load-more", hidden: true, text: "Load more", onclick: () => loadPage() });
  const bar = selectionBar({
    onSelectAll: (checked) => {
      for (const row of state.rows.values()) setSelected(row, checked);
      renderSelection();
    },
    onZip: () => downloadZip(chosen()),
    onShare: () => onShare(chosen()),
    onMove: moveSelection,
    onDelete: () => deleteItems(chosen()),
    onClear: () => {
      for (const row of [...selected.values()]) setSelected(row, false);
      renderSelection();
    },
  });
  const newFolder = newFolderForm({ parent: () => state.folderId, onCreated: (folder) => upsert({ kind: "folder", ...folder }, true), onError: showError });
  const root = el(
    "section",
    { class: "card", "aria-labelledby": "files-title" },
    crumbs.root,
    el(
      "div",
      { class: "files-head" },
      title,
      el(
        "div",
        { class: "controls" },
        newFolder.button,
        select("sort", "Sort", SORTS, "sort"),
        select("status-filter", "Status", { "": "All", ...STATUS_TEXT }, "status"),
      ),
    ),
    newFolder.root,
    notice,
    bar.root,
    table,
    countLine,
    empty,
    more,
  );

  function stop() {
    clearTimeout(pollTimer);
    pollTimer = null;
    state.generation += 1;
    state.rows.clear();
    selected.clear();
    body.replaceChildren();
    onListed(false);
  }

  // Show the folder `folderId` (null: the root), from its first page; the focus goes to its
  // heading (a keyboard user goes on from the top of the folder opened) unless `focus` is off.
  async function open(folderId, { focus = true } = {}) {
    const moved = folderId !== state.folderId;
    state.folderId = folderId;
    newFolder.close();
    await reload();
    if (moved && focus) title.focus();
  }

  async function reload() {
    stop();
    state.cursor = null;
    renderSelection();
    await loadPage();
    onListed(true);
    // A mark for the benchmark (bench/web.py): the list is there and answers.
    performance.mark("instashare:list-ready");
    schedulePoll();
  }

  // A status filter lists files only (GET /files, of this folder); without one, the
  // folder's subfolders and files (GET /entries).
  function pagePath(cursor) {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE), sort: state.sort });
    if (state.folderId) query.set("folder_id", state.folderId);
    if (cursor) query.set("cursor", cursor);
    if (!state.status) return `/entries?${query}`;
    query.set("status", state.status);
    if (!state.folderId) query.set("folder_id", "root");
    return `/files?${query}`;
  }

  async function loadPage() {
    const generation = state.generation;
    more.disabled = true;
    try {
      // A page of GET /files says nothing of where it is: the folder does (its breadcrumb).
      const wherePlace = state.status && !state.cursor && state.folderId;
      const [page, place] = await Promise.all([call("GET", pagePath(state.cursor)), wherePlace ? call("GET", `/folders/${state.folderId}`) : null]);
      if (generation !== state.generation) return; // the folder, sort or filter changed meanwhile
      if (!state.status) showPlace(page.folder, page.ancestors);
      else if (!state.cursor) showPlace(place, place ? place.ancestors : []);
      for (const item of page.items) upsert(state.status ? { kind: "file", ...item } : item, false);
      state.cursor = page.next_cursor;
      state.total = page.total;
      showError("");
    } catch (error) {
      if (generation !== state.generation) return;
      if (error instanceof ApiError && error.status === 404 && state.folderId) {
        showError("This folder does not exist any more (it was deleted or moved away).");
        notice.append(" ", el("a", { href: folderHref(null), text: `Go to ${ROOT_NAME}` }));
      } else {
        showError(`The files could not be listed: ${error.message}`);
      }
    } finally {
      more.disabled = false;
      renderFooter();
    }
  }

  function showPlace(folder, ancestors) {
    crumbs.show(folder, ancestors);
    title.textContent = folder ? folder.name : ROOT_NAME;
    onOpened(folder);
  }

  // A file just uploaded: shown at once (first, in the default order) if it is in this
  // folder and the filter takes it.
  async function added(fileId) {
    try {
      const file = await call("GET", `/files/${fileId}`);
      if ((file.folder_id ?? null) !== state.folderId) return;
      if (state.status && file.status !== state.status) return;
      if (!state.rows.has(key("file", file.id))) state.total += 1;
      upsert({ kind: "file", ...file }, state.sort === "-created_at");
      renderFooter();
      schedulePoll();
    } catch {
      // it will show on the next listing
    }
  }

  // What uploads of many files (a dropped folder) added here: the first page's new entries
  // join the list without disturbing the rows already there (whose Shared marks it updates).
  async function refresh() {
    const generation = state.generation;
    try {
      const page = await call("GET", pagePath(null));
      if (generation !== state.generation) return;
      for (const entry of page.items) {
        const item = state.status ? { kind: "file", ...entry } : entry;
        const shown = state.rows.get(key(item.kind, item.id));
        if (!shown) upsert(item, item.kind === "file" && state.sort === "-created_at");
        else if ("shared" in item && item.shared !== shown.item.shared) shown.update({ ...shown.item, shared: item.shared });
      }
      state.total = page.total;
      renderFooter();
      schedulePoll();
    } catch {
      // the next listing shows them
    }
  }

  function renderFooter() {
    const rows = [...state.rows.values()];
    const shown = rows.length;
    const noun = rows.some((row) => row.kind === "folder") ? "item" : "file";
    countLine.textContent = shown ? `Showing ${shown} of ${count(state.total, noun)}` : "";
    empty.hidden = shown > 0;
    if (state.status) empty.textContent = `No ${STATUS_TEXT[state.status].toLowerCase()} files${state.folderId ? " in this folder" : ""}.`;
    else if (state.folderId) empty.textContent = "This folder is empty. Drop files or a folder above to upload them here.";
    else empty.textContent = "No files yet. Drop some above.";
    table.hidden = shown === 0;
    more.hidden = !state.cursor;
    renderSelection();
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
    const waiting = () => [...state.rows.values()].filter((row) => row.kind === "file" && !FINAL.has(row.file.status));
    if (waiting().length === 0) return;
    const answered = new Set(); // files the first page told about
    if (waiting().length > FEW_WAITING) {
      // Many files on their way (a folder's upload): the first page answers for most of them
      // in one request.
      try {
        const page = await call("GET", pagePath(null));
        if (generation !== state.generation) return;
        for (const entry of page.items) {
          const row = state.rows.get(key("file", entry.id));
          if (!row || (!state.status && entry.kind !== "file")) continue;
          changed(row, entry);
          answered.add(row);
        }
      } catch {
        // each is asked about below
      }
    }
    await Promise.all(
      waiting()
        .filter((row) => !answered.has(row))
        // Beside a page, a few of those it did not hold (rows shown before the newest came).
        .slice(0, answered.size ? FEW_WAITING : POLL_BATCH)
        .map(async (row) => {
          try {
            const file = await call("GET", `/files/${row.file.id}`);
            if (generation === state.generation) changed(row, file);
          } catch (error) {
            if (error instanceof ApiError && error.status === 404) removeRow(key("file", row.file.id));
          }
        }),
    );
    if (generation === state.generation) schedulePoll();
  }

  // The file as the API has it now, in its row (said aloud when its status changed).
  function changed(row, file) {
    if (file.status !== row.file.status) {
      announce(file.status === "failed" ? `${file.name} failed: ${file.error || "unknown error"}` : `${file.name} is ${STATUS_TEXT[file.status].toLowerCase()}`);
      if (FINAL.has(file.status)) onChange();
    }
    row.update(file);
  }

  // An entry as GET /entries gives it ({kind, ...fields}); `first`: at the top of its kind.
  function upsert(entry, first) {
    const { kind, ...item } = entry;
    const existing = state.rows.get(key(kind, item.id));
    if (existing) {
      existing.update(item);
      return;
    }
    const callbacks = {
      onShare: (shown) => onShare([{ kind, ...shown }]),
      onDelete: (shown) => deleteItems([{ kind, ...shown }]),
      onZip: downloadZip,
      onError: showError,
      onSelect: toggled,
    };
    const row = kind === "folder" ? folderRow(item, callbacks) : fileRow(item, callbacks);
    state.rows.set(key(kind, item.id), row);
    // Folders before files, whatever the order.
    const firstFile = body.querySelector("tr[data-file-id]");
    if (kind === "folder") body.insertBefore(row.root, first ? body.firstChild : firstFile);
    else if (first) body.insertBefore(row.root, firstFile);
    else body.append(row.root);
    if (kind === "folder" && first) {
      state.total += 1;
      renderFooter();
    }
  }

  function removeRow(rowKey) {
    const row = state.rows.get(rowKey);
    if (!row) return;
    row.root.remove();
    state.rows.delete(rowKey);
    selected.delete(rowKey);
    state.total = Math.max(0, state.total - 1);
    renderFooter();
  }

  // The selection: rows whose box is ticked.
  function setSelected(row, checked) {
    row.check.checked = checked;
    row.root.classList.toggle("selected", checked);
    if (checked) selected.set(key(row.kind, row.item.id), row);
    else selected.delete(key(row.kind, row.item.id));
  }

  function toggled(row) {
    setSelected(row, row.check.checked);
    renderSelection();
  }

  function renderSelection() {
    bar.show(selected.size, state.rows.size, foldersAndFiles([...selected.values()]));
  }

  const chosen = () => [...selected.values()].map((row) => ({ kind: row.kind, ...row.item }));

  // `items` ([{kind, id, name}]) as one ZIP, through a grant the browser follows (the archive
  // streams to disk); files not ready yet are left out, and the list says how many.
  async function downloadZip(items) {
    const what = items.length === 1 ? items[0].name : foldersAndFiles(items);
    try {
      const body = { items: items.map(({ kind, id }) => ({ kind, id })) };
      const grant = await call("POST", "/download-grants", { body });
      followDownload(grant.url);
      const waiting = grant.pending_count;
      showError(waiting ? `${count(waiting, "file")} not ready yet ${waiting === 1 ? "is" : "are"} left out of ${grant.name}.` : "");
      announce(`Downloading ${grant.name}`);
    } catch (failure) {
      showError(`${what} could not be downloaded: ${failure.message}`);
    }
  }

  async function moveSelection() {
    const moved = await onMove(chosen(), state.folderId);
    for (const item of moved) removeRow(key(item.kind, item.id));
  }

  // Deletes `items` ([{kind, id, name}]) after asking; a row's Delete is one such item.
  async function deleteItems(items) {
    const folders = items.filter((item) => item.kind === "folder").length;
    let question;
    if (items.length === 1 && folders) question = `Delete the folder “${items[0].name}” and everything in it? Its links stop working too.`;
    else if (items.length === 1) question = `Delete “${items[0].name}”? Its links stop working too.`;
    else if (folders) question = `Delete ${foldersAndFiles(items)}? Everything in the ${folders === 1 ? "folder" : "folders"} goes too, and their links stop working.`;
    else question = `Delete ${foldersAndFiles(items)}? Their links stop working too.`;
    // eslint-disable-next-line no-alert -- a native confirm is keyboard- and screen-reader-friendly
    if (!window.confirm(`${question} This cannot be undone.`)) return;
    const failed = [];
    for (const item of items) {
      try {
        await call("DELETE", `/${item.kind}s/${item.id}`);
        removeRow(key(item.kind, item.id));
      } catch (failure) {
        if (failure instanceof ApiError && failure.status === 404) removeRow(key(item.kind, item.id));
        else failed.push({ name: item.name, reason: failure.message });
      }
    }
    onChange();
    if (failed.length === 0) showError("");
    else if (items.length === 1) showError(`${items[0].name} could not be deleted: ${failed[0].reason}`);
    else showError(`These could not be deleted: ${failed.map((f) => `${f.name} (${f.reason})`).join("; ")}`);
    const gone = items.length - failed.length;
    if (gone) announce(items.length === 1 ? `${items[0].name} deleted` : `${count(gone, "item")} deleted`);
  }

  return {
    root,
    open,
    reload,
    stop,
    added,
    refresh,
    get folderId() {
      return state.folderId;
    },
  };
}

// "New folder": a button beside the sort, and a small form under the heading once pressed.
function newFolderForm({ parent, onCreated, onError }) {
  const input = el("input", { id: "new-folder-name", type: "text", maxlength: 255, required: true, "aria-describedby": "new-folder-error" });
  const error = el("p", { id: "new-folder-error", class: "error", role: "alert" });
  const button = el("button", { id: "new-folder", type: "button", class: "secondary", text: "New folder", "aria-expanded": "false", onclick: () => (root.hidden ? show() : close()) });
  const root = el(
    "form",
    { class: "new-folder", hidden: true, novalidate: true, onsubmit: create },
    field("Folder name", input),
    el("div", { class: "new-folder-buttons" }, el("button", { type: "submit", text: "Create folder" }), el("button", { type: "button", class: "secondary", text: "Cancel", onclick: () => close(true) })),
    error,
  );
  root.addEventListener("keydown", (event) => {
    if (event.key === "Escape") close(true);
  });

  function show() {
    root.hidden = false;
    button.setAttribute("aria-expanded", "true");
    input.value = "";
    error.textContent = "";
    input.focus();
  }

  function close(refocus = false) {
    root.hidden = true;
    button.setAttribute("aria-expanded", "false");
    if (refocus) button.focus();
  }

  async function create(event) {
    event.preventDefault();
    const name = input.value.trim();
    if (!name) {
      error.textContent = "Type a name for the new folder.";
      input.focus();
      return;
    }
    const body = { name };
    if (parent()) body.parent_id = parent();
    try {
      const folder = await call("POST", "/folders", { body });
      onCreated(folder);
      announce(`Folder ${folder.name} created`);
      onError("");
      close(true);
    } catch (failure) {
      error.textContent =
        failure.status === 409 ? `This folder already has a file or folder named “${name}”. Choose another name.` : `The folder could not be made: ${failure.message}`;
      input.focus();
    }
  }

  return { root, button, close };
}
