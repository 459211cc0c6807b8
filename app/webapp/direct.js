// Direct uploads: when the server offers them (GCS), a file's bytes go straight to a GCS
// resumable session the API opens for it, not through the API (see the README's "Direct
// uploads"). The session URL is the capability to write that one upload: it stays in this
// page's memory only. A chunk that fails is asked about (`bytes */N`) and the rest sent;
// a closed tab starts over (the abandoned upload expires, or is listed as unfinished).

import { call } from "./api.js";

let offered = null;

// The server's offer ({chunk_bytes, ...}), or null when it takes tus only. Asked once.
export function directOffer() {
  offered ??= call("GET", "/direct-uploads").then(
    (offer) => (offer.enabled ? offer : null),
    () => null,
  );
  return offered;
}

// CRC-32 (the ZIP one), updated chunk by chunk: the server's worker checks it.
const TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(crc, bytes) {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

// One PUT to the session; resolves to how many bytes it holds (all of them once finished).
function put(session, body, range, onProgress, bind) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    bind(() => xhr.abort());
    xhr.open("PUT", session);
    xhr.setRequestHeader("Content-Range", range);
    xhr.upload.onprogress = (event) => onProgress(event.loaded);
    xhr.onload = () => {
      if (xhr.status === 200 || xhr.status === 201) resolve(Infinity);
      else if (xhr.status === 308) {
        const held = xhr.getResponseHeader("Range"); // "bytes=0-N"
        resolve(held ? Number(held.split("-")[1]) + 1 : 0);
      } else reject(new Error(`The storage answered ${xhr.status}.`));
    };
    xhr.onerror = () => reject(new Error("The connection to the storage failed."));
    xhr.onabort = () => reject(new Error("aborted"));
    xhr.send(body);
  });
}

// Send `file` to `path` under `into` directly; `on` as tus uploads' (uploads.js `send`).
export async function sendDirect(file, path, into, { onCreated }, on, onConflict, offer) {
  let stop = () => {};
  let cancelled = false;
  let upload = null;
  on.attach?.(() => {
    cancelled = true;
    stop();
    if (upload) {
      const id = upload.url.split("/").pop();
      call("POST", `/direct-uploads/${id}/cancel`, { body: { session_url: upload.session_url } }).then(onCreated, () => {});
    }
  });
  const body = { name: file.name, size: file.size };
  if (path.includes("/")) body.relative_path = path;
  if (into) body.folder_id = into;
  if (file.type) body.content_type = file.type;
  if (onConflict) body.on_conflict = onConflict;
  try {
    upload = await call("POST", "/direct-uploads", { body });
  } catch (error) {
    on.error(error.message, error.status >= 400 && error.status < 500, error.problem);
    return;
  }
  onCreated(); // the upload now reserves its size
  const chunk = offer.chunk_bytes;
  const size = file.size;
  let offset = 0;
  let crc = 0;
  let crcAt = 0; // the CRC covers the file up to here
  let failures = 0;
  while (offset < size && !cancelled) {
    const end = Math.min(offset + chunk, size);
    const bytes = new Uint8Array(await file.slice(offset, end).arrayBuffer());
    if (crcAt === offset) {
      crc = crc32(crc, bytes);
      crcAt = end;
    }
    const from = offset;
    try {
      const held = await put(upload.session_url, bytes, `bytes ${offset}-${end - 1}/${size}`, (sent) => on.progress(from + sent, size), (abort) => (stop = abort));
      offset = Math.min(held, size);
      failures = 0;
    } catch (error) {
      if (cancelled) return;
      if (++failures > 3) {
        on.error(`${error.message} Choose the file again to start over.`, false, null);
        return;
      }
      await new Promise((r) => setTimeout(r, 1000 * failures));
      try {
        offset = Math.min(await put(upload.session_url, null, `bytes */${size}`, () => {}, (abort) => (stop = abort)), size);
      } catch {
        // asked again on the next round
      }
    }
    on.progress(offset, size);
    if (offset > crcAt) {
      // The session kept bytes this page has not summed (a retried chunk): sum them now.
      crc = crc32(crc, new Uint8Array(await file.slice(crcAt, offset).arrayBuffer()));
      crcAt = offset;
    }
  }
  if (cancelled) return;
  try {
    const id = upload.url.split("/").pop();
    const made = await call("POST", `/direct-uploads/${id}/complete`, { body: { crc32: crc.toString(16).padStart(8, "0") } });
    on.success(made.id);
  } catch (error) {
    on.error(error.message, true, error.problem);
  }
}
