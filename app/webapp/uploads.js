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

const active = new Set();

export function uploading() {
  return active.size > 0;
}

export function startUploads(files, { list, onCreated, onFinished }) {
  for (const file of files) startUpload(file, list, onCreated, onFinished);
}

function startUpload(file, list, onCreated, onFinished) {
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
  list.prepend(item);

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
}
