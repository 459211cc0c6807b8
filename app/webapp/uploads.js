// Uploads over tus 1.0 (the vendored tus-js-client), into the folder the list shows. Files
// chosen or dropped one by one each get their own progress, speed, time left and a cancel
// button; a folder (dropped, or chosen with the folder picker) is one item for all its files,
// each sent with its `relativePath` so the server makes its folders. At most PARALLEL files
// go at once, whatever was chosen. An upload cut short (a dropped link, a closed tab)
// resumes from the server's offset when the same file is chosen again: tus-js-client keeps
// each upload's URL in localStorage under the file's fingerprint (name, type, size,
// modification time, and here where it goes). The URL alone is useless without the token,
// which is not stored there.

import { UPLOADS, authHeaders, call } from "./api.js";
import { directOffer, sendDirect } from "./direct.js";
import { announce, count, el, formatBytes, formatDuration, sentence } from "./ui.js";

// Bytes per PATCH. Each one costs the browser a new request and a pause for the answer:
// at 8 MiB (the CLI's size) a loopback upload ran at ~0.75x the CLI's speed, at 24 MiB at
// ~0.9x (bench/web.py). Under the 32 MiB request cap of some proxies (Cloud Run's HTTP/1);
// a chunk cut short is not sent again, since the server keeps what it received.
const CHUNK_SIZE = 24 * 1024 * 1024;
// A file this small goes in the request that creates its upload (tus creation-with-upload):
// one request instead of two, which is most of the time of a folder of small files. A big
// one is created first, so that its URL is kept before its bytes go.
const SMALL_FILE = 1024 * 1024;
// Uploads at once: a browser opens at most six connections to one server (HTTP/1.1), and the
// list's polling needs one.
const PARALLEL = 4;
// More loose files than this chosen at once are one item, as a folder's are.
const MAX_SINGLE_ITEMS = 20;
const SPEED_WINDOW_MS = 3000;
const FAILURES_SHOWN = 5;

// The upload card: a drop zone (or pickers for files and for a folder) and the uploads under
// way. `folderId()` is where new uploads go (null: the root); `onCreated()` once an upload
// reserves its size, `onFinished(fileId)` once a file chosen on its own is uploaded,
// `onManyFinished()` now and then while a folder's files arrive (and once they all have).
// `unfinishedUrl(file, path, into)`: the URL of an unfinished upload of that file there, made
// by another tab, browser or client, to resume when this browser kept none of its own.
export function uploadPanel({ folderId, onCreated, onFinished, onManyFinished, unfinishedUrl = () => null }) {
  const active = new Set(); // the tus uploads under way
  const queue = createQueue(PARALLEL);
  const picker = el("input", { id: "picker", type: "file", multiple: true, hidden: true });
  const folderPicker = el("input", { id: "folder-picker", type: "file", webkitdirectory: true, hidden: true });
  const zone = el(
    "div",
    { id: "dropzone", class: "dropzone" },
    el("p", { text: "Drop files or a folder anywhere on the page, or" }),
    el(
      "div",
      { class: "choose" },
      el("button", { id: "choose", type: "button", text: "Choose files…", onclick: () => picker.click() }),
      el("button", { id: "choose-folder", type: "button", class: "secondary", text: "Choose a folder…", onclick: () => folderPicker.click() }),
    ),
    picker,
    folderPicker,
    el("p", { class: "hint", text: "Big files are fine: an upload cut short resumes when you choose the same file again." }),
  );
  const list = el("ul", { id: "uploads", class: "uploads", "aria-label": "Uploads" });
  const root = el("section", { class: "card upload-card", "aria-labelledby": "upload-title" }, el("h2", { id: "upload-title", text: "Upload" }), zone, list);
  const context = { active, queue, onCreated, unfinishedUrl };

  // `picked`: [{file, path}] where `path` is the file's place under the folder it goes to
  // ("photos/2024/a.jpg"; just its name for a loose file); `empty`: the paths of the empty
  // folders of a dropped folder ("photos/later"), which no file's path makes.
  function start(picked, empty = []) {
    if (picked.length === 0 && empty.length === 0) return;
    const into = folderId();
    if (empty.length > 0) makeFolders(empty, into);
    const loose = picked.filter(({ path }) => !path.includes("/"));
    const trees = new Map(); // the top folder's name -> its files
    for (const entry of picked) {
      if (!entry.path.includes("/")) continue;
      const top = entry.path.slice(0, entry.path.indexOf("/"));
      trees.set(top, [...(trees.get(top) || []), entry]);
    }
    for (const [name, entries] of trees) list.prepend(uploadGroup(name, entries, into, { ...context, onManyFinished }));
    if (loose.length > MAX_SINGLE_ITEMS) {
      list.prepend(uploadGroup(count(loose.length, "file"), loose, into, { ...context, onManyFinished }));
    } else {
      for (const { file } of loose) list.prepend(uploadItem(file, into, { ...context, onFinished }));
    }
  }

  // One request a path (the API makes the folders on the way, as an upload's path does).
  async function makeFolders(paths, into) {
    const failed = [];
    for (const path of paths) {
      try {
        await call("POST", "/folder-paths", { body: into ? { path, parent_id: into } : { path } });
      } catch (failure) {
        failed.push(`${path} (${failure.message})`);
      }
    }
    onManyFinished();
    if (failed.length === 0) return;
    const text = `${failed.length === 1 ? "This empty folder" : "These empty folders"} could not be made: ${failed.join("; ")}`;
    const dismiss = el("button", { type: "button", class: "secondary small", text: "Dismiss", onclick: () => item.remove() });
    const item = el("li", { class: "upload failed" }, el("div", { class: "upload-top" }, el("span", { class: "upload-detail", text: sentence(text) }), dismiss));
    list.prepend(item);
    announce(sentence(text));
  }

  picker.addEventListener("change", () => {
    start([...picker.files].map((file) => ({ file, path: file.name })));
    picker.value = "";
  });
  folderPicker.addEventListener("change", () => {
    start([...folderPicker.files].map((file) => ({ file, path: file.webkitRelativePath || file.name })));
    folderPicker.value = "";
  });
  // Files dropped anywhere on the app are taken, not only on the zone: while they are
  // dragged over the page, the zone lights up to say so. Not while a dialog is open or the
  // app is not shown (the log-in form), where a drop does nothing; never does the browser
  // replace the app with the dropped file.
  const taking = () => !root.closest("[hidden]") && !document.querySelector("dialog[open]");
  const carriesFiles = (event) => [...(event.dataTransfer?.types ?? [])].includes("Files");
  for (const type of ["dragenter", "dragover"]) {
    window.addEventListener(type, (event) => {
      event.preventDefault();
      if (taking() && carriesFiles(event)) zone.classList.add("over");
    });
  }
  window.addEventListener("dragleave", (event) => {
    if (event.relatedTarget === null) zone.classList.remove("over"); // it left the window
  });
  window.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (!taking()) return;
    // The entries must be taken now: the drop's data is gone once this handler returns.
    const entries = [...event.dataTransfer.items].map((item) => item.webkitGetAsEntry?.()).filter(Boolean);
    if (entries.some((entry) => entry.isDirectory)) {
      readEntries(entries).then(({ files, empty }) => start(files, empty), () => announce("The dropped folder could not be read. Choose it with “Choose a folder…” instead."));
    } else {
      start([...event.dataTransfer.files].map((file) => ({ file, path: file.name })));
    }
  });
  window.addEventListener("beforeunload", (event) => {
    if (active.size > 0 || queue.waiting > 0) event.preventDefault();
  });

  // The uploads this tab is sending (by id): the unfinished list leaves them to this card.
  const activeIds = () => [...active].map((upload) => upload.url?.split("/").pop()).filter(Boolean);

  return { root, activeIds };
}

// Every file under the dropped entries, with its path from the dropped folder down, and the
// paths of the folders there that hold nothing at all (made on their own: no file names them).
async function readEntries(entries) {
  const files = [];
  const empty = [];
  const visit = async (entry) => {
    const path = entry.fullPath.replace(/^\//, "");
    if (entry.isFile) {
      const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
      files.push({ file, path });
      return;
    }
    const reader = entry.createReader();
    let held = 0;
    for (;;) {
      // A directory reader hands out its entries a batch (of 100 in Chromium) at a time.
      const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
      if (batch.length === 0) break;
      held += batch.length;
      for (const child of batch) await visit(child);
    }
    if (held === 0) empty.push(path);
  };
  for (const entry of entries) await visit(entry);
  return { files, empty };
}

// Runs at most `limit` jobs (functions returning promises) at once, in the order given.
function createQueue(limit) {
  const waiting = [];
  let running = 0;
  const next = () => {
    while (running < limit && waiting.length > 0) {
      const job = waiting.shift();
      running += 1;
      job().finally(() => {
        running -= 1;
        next();
      });
    }
  };
  return {
    add(job) {
      waiting.push(job);
      next();
    },
    // Drops the jobs not started yet that `refuse` names.
    drop(refuse) {
      for (let i = waiting.length - 1; i >= 0; i -= 1) if (refuse(waiting[i])) waiting.splice(i, 1);
    },
    get waiting() {
      return waiting.length;
    },
  };
}

// One tus upload of `file` to `path` under the folder `into` (null: the root). `on` gets
// `attach(stop)` (a way to cancel it), `resuming()`, `progress(sent, total)`, `success(fileId)`
// and `error(reason, final, problem)`: `final` when choosing the file again cannot help (the
// server refused to make it), with the server's problem+json if it sent one. `onConflict`
// ("rename", "replace") is what the server does when the name is taken (409 without).
// Resolves once it ends.
// Straight to storage when the server offers it (./direct.js), else over tus.
function send(file, path, into, context, on, onConflict = null) {
  return directOffer().then((offer) => (offer && file.size > 0 ? sendDirect(file, path, into, context, on, onConflict, offer) : sendTus(file, path, into, context, on, onConflict)));
}

function sendTus(file, path, into, { active, onCreated, unfinishedUrl }, on, onConflict = null) {
  const metadata = { filename: file.name, filetype: file.type || "application/octet-stream" };
  if (path.includes("/")) metadata.relativePath = path;
  if (into) metadata.folderId = into;
  if (onConflict) metadata.onConflict = onConflict;
  return new Promise((resolve) => {
    const upload = new window.tus.Upload(file, {
      endpoint: UPLOADS,
      chunkSize: CHUNK_SIZE,
      uploadDataDuringCreation: file.size <= SMALL_FILE,
      retryDelays: [0, 1000, 3000, 5000, 10000, 20000],
      metadata,
      removeFingerprintOnSuccess: true,
      // tus-js-client's own (name, type, size, date, endpoint), and where the file goes: the
      // same file bound for another folder is another upload.
      fingerprint: (f, options) => Promise.resolve(["tus-br", f.name, f.type, f.size, f.lastModified, options.endpoint, ...(path.includes("/") || into ? [into || "", path] : [])].join("-")),
      onBeforeRequest(req) {
        // The token of this moment: a new login while an upload waits to retry still works.
        for (const [name, value] of Object.entries(authHeaders())) req.setHeader(name, value);
      },
      onShouldRetry(error) {
        // A refused creation (the name is taken, the quota is full) stays refused: never
        // sent again. A PATCH's 409 or 423 (its offset out of step, another request
        // writing) is not sent again either: tus-js-client asks with HEAD where the upload
        // stands and goes on from there.
        const status = error.originalResponse ? error.originalResponse.getStatus() : 0;
        if (status === 409 || status === 423) return error.originalRequest?.getMethod() === "PATCH";
        return !(status >= 400 && status < 500);
      },
      onUploadUrlAvailable() {
        onCreated(); // the upload now reserves its size: the usage bar shows it
      },
      onProgress: on.progress,
      onSuccess() {
        finish();
        on.success(upload.url.split("/").pop());
      },
      onError(error) {
        finish();
        const response = error.originalResponse;
        let reason = "The connection failed.";
        let problem = null;
        if (response) {
          try {
            problem = JSON.parse(response.getBody());
            reason = sentence(problem.detail) || reason;
          } catch {
            reason = `The server answered ${response.getStatus()}.`;
          }
        }
        const status = response ? response.getStatus() : 0;
        on.error(reason, status >= 400 && status < 500 && error.originalRequest?.getMethod() === "POST", problem);
      },
    });
    let settled = false;
    const finish = () => {
      settled = true;
      active.delete(upload);
      resolve();
    };
    on.attach?.(() => {
      if (settled) return; // a finished upload is the file now: never terminate it
      finish();
      // `true`: terminate at the server too (tus DELETE), freeing the reserved quota; the
      // usage bar shows the room it gave back once the server has ended the upload.
      upload.abort(true).then(onCreated, () => {});
    });
    active.add(upload);
    upload.findPreviousUploads().then((previous) => {
      const elsewhere = previous.length === 0 && !onConflict ? unfinishedUrl(file, path, into) : null;
      if (previous.length > 0) {
        upload.resumeFromPreviousUpload(previous[0]);
        on.resuming?.();
      } else if (elsewhere) {
        upload.options.uploadUrl = elsewhere; // tus-js-client asks it with HEAD, then goes on
        on.resuming?.();
      }
      upload.start();
    });
  });
}

// A speed over the last few seconds, and the time left at that speed.
function rate() {
  const samples = [];
  return (done, total) => {
    const now = performance.now();
    samples.push([now, done]);
    while (samples.length > 2 && now - samples[0][0] > SPEED_WINDOW_MS) samples.shift();
    const [t0, d0] = samples[0];
    const speed = now > t0 ? ((done - d0) * 1000) / (now - t0) : 0;
    return { speed, left: speed > 0 ? (total - done) / speed : Infinity };
  };
}

// One file chosen on its own: its list item, which removes itself once done (or dismissed).
function uploadItem(file, into, context) {
  const bar = el("progress", { max: file.size || 1, value: 0, "aria-label": `Upload of ${file.name}` });
  const detail = el("span", { class: "upload-detail", text: "Waiting…" });
  const cancel = el("button", { type: "button", class: "secondary small", text: "Cancel", "aria-label": `Cancel upload of ${file.name}` });
  const choices = el("div", { class: "upload-choices", hidden: true });
  const item = el("li", { class: "upload" }, el("div", { class: "upload-top" }, el("span", { class: "upload-name", text: file.name }), cancel), bar, detail, choices);
  const speedOf = rate();
  let finished = false;
  let abort = null;
  let lastAnnounced = -1;
  let onConflict = null; // once the person chose: "rename" (keep both) or "replace"
  const again = (rule) => {
    onConflict = rule;
    finished = false;
    choices.hidden = true;
    choices.replaceChildren();
    item.classList.remove("failed");
    cancel.textContent = "Cancel";
    cancel.setAttribute("aria-label", `Cancel upload of ${file.name}`);
    context.queue.add(job);
    cancel.focus();
  };
  // The name is taken where the file goes: keep both (the server picks "name (1).ext") or,
  // when a file holds it, replace that file once this one has arrived.
  const offerChoices = (reason, takenBy) => {
    detail.textContent = reason;
    const keep = el("button", { type: "button", class: "small", text: "Keep both", "aria-label": `Keep both: upload ${file.name} under a new name`, onclick: () => again("rename") });
    const replace = takenBy === "file" ? el("button", { type: "button", class: "secondary small", text: "Replace", "aria-label": `Replace the file named ${file.name}`, onclick: () => again("replace") }) : null;
    choices.replaceChildren(keep, replace);
    choices.hidden = false;
    announce(`${reason} Keep both${replace ? " or replace it" : ""}?`);
  };
  const job = () => {
    if (finished) return Promise.resolve();
    detail.textContent = "Starting…";
    return send(file, file.name, into, context, {
      attach: (stop) => {
        abort = stop;
      },
      resuming: () => {
        detail.textContent = "Resuming…";
      },
      progress(sent, total) {
        bar.value = sent;
        const { speed, left } = speedOf(sent, total);
        detail.textContent = `${formatBytes(sent)} of ${formatBytes(total)} · ${formatBytes(speed)}/s · ${formatDuration(left)} left`;
        const quarter = Math.floor((sent / (total || 1)) * 4);
        if (quarter !== lastAnnounced && quarter < 4) {
          lastAnnounced = quarter;
          announce(`Uploading ${file.name}: ${quarter * 25}%`);
        }
      },
      success(fileId) {
        finished = true;
        bar.value = bar.max;
        detail.textContent = `Uploaded ${formatBytes(file.size)}`;
        item.classList.add("done");
        cancel.remove();
        announce(`${file.name} is uploaded`);
        context.onFinished(fileId);
        setTimeout(() => item.remove(), 4000);
      },
      error(reason, final, problem) {
        finished = true;
        cancel.textContent = "Dismiss";
        cancel.setAttribute("aria-label", `Dismiss upload of ${file.name}`);
        const takenBy = final && problem?.status === 409 ? problem.taken_by : null;
        if (takenBy === "file" || takenBy === "folder" || takenBy === "upload") {
          bar.value = 0; // nothing was kept: a question, not a failure
          offerChoices(reason, takenBy);
          return;
        }
        item.classList.add("failed");
        detail.textContent = final ? `Failed: ${reason}` : `Failed: ${reason} Choose the file again to resume.`;
        announce(`Upload of ${file.name} failed: ${reason}`);
      },
    }, onConflict);
  };
  cancel.addEventListener("click", () => {
    if (!finished) {
      finished = true;
      abort?.();
      context.queue.drop((waiting) => waiting === job);
      announce(`Upload of ${file.name} cancelled`);
    }
    item.remove();
  });
  context.queue.add(job);
  return item;
}

// A folder's files (or many loose files): one item for them all, with the files done, the
// bytes sent, the speed and the time left, and which failed (and why).
function uploadGroup(name, entries, into, context) {
  const total = entries.reduce((sum, { file }) => sum + file.size, 0);
  const bar = el("progress", { max: total || 1, value: 0, "aria-label": `Upload of ${name}` });
  const detail = el("span", { class: "upload-detail", text: `Waiting · ${count(entries.length, "file")}, ${formatBytes(total)}` });
  const failures = el("ul", { class: "upload-failures", hidden: true });
  const cancel = el("button", { type: "button", class: "secondary small", text: "Cancel", "aria-label": `Cancel upload of ${name}` });
  const item = el("li", { class: "upload group" }, el("div", { class: "upload-top" }, el("span", { class: "upload-name", text: name }), cancel), bar, detail, failures);
  const sentOf = new Map(); // file -> bytes sent
  const aborts = new Set();
  const failed = [];
  const speedOf = rate();
  const jobs = new Set();
  let sent = 0;
  let done = 0;
  let stopped = false;
  let lastAnnounced = -1;
  let lastRefresh = 0;

  const render = () => {
    bar.value = Math.min(sent, bar.max);
    const { speed, left } = speedOf(sent, total);
    detail.textContent = `${done} of ${count(entries.length, "file")} · ${formatBytes(sent)} of ${formatBytes(total)} · ${formatBytes(speed)}/s · ${formatDuration(left)} left`;
    const quarter = Math.floor((done / entries.length) * 4);
    if (quarter !== lastAnnounced && quarter < 4) {
      lastAnnounced = quarter;
      announce(`Uploading ${name}: ${done} of ${count(entries.length, "file")}`);
    }
  };
  const refresh = (force) => {
    const now = performance.now();
    if (!force && now - lastRefresh < 2000) return;
    lastRefresh = now;
    context.onManyFinished();
  };
  const settle = () => {
    if (done + failed.length < entries.length || stopped) return;
    stopped = true;
    refresh(true);
    if (failed.length === 0) {
      bar.value = bar.max;
      detail.textContent = `Uploaded ${count(entries.length, "file")} (${formatBytes(total)})`;
      item.classList.add("done");
      cancel.remove();
      announce(`${name} is uploaded: ${count(entries.length, "file")}`);
      setTimeout(() => item.remove(), 8000);
      return;
    }
    detail.textContent = `${done} of ${count(entries.length, "file")} uploaded; ${failed.length} could not be.`;
    failures.replaceChildren(
      ...failed.slice(0, FAILURES_SHOWN).map(([path, reason]) => el("li", {}, el("span", { class: "upload-name", text: path }), ` ${reason}`)),
      failed.length > FAILURES_SHOWN ? el("li", { text: `and ${count(failed.length - FAILURES_SHOWN, "more", "more")}` }) : null,
    );
    failures.hidden = false;
    item.classList.add("failed");
    cancel.textContent = "Dismiss";
    cancel.setAttribute("aria-label", `Dismiss upload of ${name}`);
    announce(`${name}: ${failed.length} of ${count(entries.length, "file")} could not be uploaded`);
  };

  for (const { file, path } of entries) {
    const job = () => {
      jobs.delete(job);
      if (stopped) return Promise.resolve();
      return send(file, path, into, context, {
        attach: (stop) => aborts.add(stop),
        progress(bytes) {
          sent += bytes - (sentOf.get(file) || 0);
          sentOf.set(file, bytes);
          render();
        },
        success() {
          sent += file.size - (sentOf.get(file) || 0);
          sentOf.set(file, file.size);
          done += 1;
          render();
          refresh(false);
          settle();
        },
        error(reason) {
          failed.push([path, reason]);
          settle();
        },
      });
    };
    jobs.add(job);
    context.queue.add(job);
  }
  cancel.addEventListener("click", () => {
    if (!stopped) {
      stopped = true;
      context.queue.drop((waiting) => jobs.has(waiting));
      for (const stop of aborts) stop();
      announce(`Upload of ${name} cancelled`);
      refresh(true);
    }
    item.remove();
  });
  return item;
}
