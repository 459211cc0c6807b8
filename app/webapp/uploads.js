// Uploads over tus 1.0 (the vendored tus-js-client), each with its own progress, speed,
// time left and a cancel button. An upload cut short (a dropped link, a closed tab)
// resumes from the server's offset when the same file is chosen again: tus-js-client keeps
// each upload's URL in localStorage under the file's fingerprint (name, type, size,
// modification time). The URL alone is useless without the token, which is not stored there.

import { UPLOADS, authHeaders } from "./api.js";
import { announce, el, formatBytes, formatDuration } from "./ui.js";

// Bytes per PATCH. Each one costs the browser a new request and a pause for the answer:
// at 8 MiB (the CLI's size) a loopback upload ran at ~0.75x the CLI's speed, at 24 MiB at
// ~0.9x (bench/web.py). Under the 32 MiB request cap of some proxies (Cloud Run's HTTP/1);
// a chunk cut short is not sent again, since the server keeps what it received.
const CHUNK_SIZE = 24 * 1024 * 1024;
const SPEED_WINDOW_MS = 3000;

// The upload card: a drop zone (or a file picker) and the uploads under way.
// `onCreated()` once an upload reserves its size, `onFinished(fileId)` once it is uploaded.
export function uploadPanel({ onCreated, onFinished }) {
  const active = new Set(); // the tus uploads under way
  const picker = el("input", { id: "picker", type: "file", multiple: true, hidden: true });
  const zone = el(
    "div",
    { id: "dropzone", class: "dropzone" },
    el("p", { text: "Drop files here, or" }),
    el("button", { id: "choose", type: "button", text: "Choose files…", onclick: () => picker.click() }),
    picker,
    el("p", { class: "hint", text: "Big files are fine: an upload cut short resumes when you choose the same file again." }),
  );
  const list = el("ul", { id: "uploads", class: "uploads", "aria-label": "Uploads" });
  const root = el("section", { class: "card", "aria-labelledby": "upload-title" }, el("h2", { id: "upload-title", text: "Upload" }), zone, list);

  const start = (files) => {
    for (const file of files) list.prepend(startUpload(file, active, { onCreated, onFinished }));
  };
  picker.addEventListener("change", () => {
    start([...picker.files]);
    picker.value = "";
  });
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
  }
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    start([...event.dataTransfer.files]);
  });
  // A file dropped beside the zone must not replace the app with the file.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
  window.addEventListener("beforeunload", (event) => {
    if (active.size > 0) event.preventDefault();
  });

  return { root };
}

// One upload: its list item, which removes itself once done (or dismissed).
function startUpload(file, active, { onCreated, onFinished }) {
  const bar = el("progress", { max: file.size || 1, value: 0, "aria-label": `Upload of ${file.name}` });
  const detail = el("span", { class: "upload-detail", text: "Starting…" });
  const cancel = el("button", { type: "button", class: "secondary small", text: "Cancel", "aria-label": `Cancel upload of ${file.name}` });
  const item = el(
    "li",
    { class: "upload" },
    el("div", { class: "upload-top" }, el("span", { class: "upload-name", text: file.name }), cancel),
    bar,
    detail,
  );

  const samples = [];
  let finished = false;
  let lastAnnounced = -1;
  const upload = new window.tus.Upload(file, {
    endpoint: UPLOADS,
    chunkSize: CHUNK_SIZE,
    retryDelays: [0, 1000, 3000, 5000, 10000, 20000],
    metadata: { filename: file.name, filetype: file.type || "application/octet-stream" },
    removeFingerprintOnSuccess: true,
    onBeforeRequest(req) {
      // The token of this moment: a new login while an upload waits to retry still works.
      for (const [name, value] of Object.entries(authHeaders())) req.setHeader(name, value);
    },
    onUploadUrlAvailable() {
      onCreated(); // the upload now reserves its size: the usage bar shows it
    },
    onProgress(sent, total) {
      bar.value = sent;
      const now = performance.now();
      samples.push([now, sent]);
      while (samples.length > 2 && now - samples[0][0] > SPEED_WINDOW_MS) samples.shift();
      const [t0, b0] = samples[0];
      const speed = now > t0 ? ((sent - b0) * 1000) / (now - t0) : 0;
      const left = speed > 0 ? (total - sent) / speed : Infinity;
      detail.textContent = `${formatBytes(sent)} of ${formatBytes(total)} · ${formatBytes(speed)}/s · ${formatDuration(left)} left`;
      const quarter = Math.floor((sent / (total || 1)) * 4);
      if (quarter !== lastAnnounced && quarter < 4) {
        lastAnnounced = quarter;
        announce(`Uploading ${file.name}: ${quarter * 25}%`);
      }
    },
    onSuccess() {
      finished = true;
      active.delete(upload);
      bar.value = bar.max;
      detail.textContent = `Uploaded ${formatBytes(file.size)}`;
      item.classList.add("done");
      cancel.remove();
      announce(`${file.name} is uploaded`);
      onFinished(upload.url.split("/").pop());
      setTimeout(() => item.remove(), 4000);
    },
    onError(error) {
      finished = true;
      active.delete(upload);
      const response = error.originalResponse;
      let reason = "the connection failed";
      if (response) {
        try {
          reason = JSON.parse(response.getBody()).detail || reason;
        } catch {
          reason = `the server answered ${response.getStatus()}`;
        }
      }
      detail.textContent = `Failed: ${reason}. Choose the file again to resume.`;
      item.classList.add("failed");
      cancel.textContent = "Dismiss";
      cancel.setAttribute("aria-label", `Dismiss upload of ${file.name}`);
      announce(`Upload of ${file.name} failed: ${reason}`);
    },
  });

  cancel.addEventListener("click", () => {
    if (!finished) {
      active.delete(upload);
      // `true`: terminate at the server too (tus DELETE), freeing the reserved quota.
      upload.abort(true).catch(() => {});
      announce(`Upload of ${file.name} cancelled`);
    }
    item.remove();
  });

  active.add(upload);
  upload.findPreviousUploads().then((previous) => {
    if (previous.length > 0) {
      upload.resumeFromPreviousUpload(previous[0]);
      detail.textContent = "Resuming…";
    }
    upload.start();
  });
  return item;
}
