// What leads a file's name in the list: its thumbnail, when the worker made one (an image it
// could decode), else a type badge in letters ("IMG", "TXT", "PDF", …).
//
// A thumbnail is the API's (GET /files/{id}/preview), which wants the Bearer token: an
// <img src> cannot send it, so it is fetched with the token and shown from a blob: URL (the
// CSP allows `img-src blob:` for this; nothing from another origin). Lazily: only rows on
// screen ask for theirs, one request each, once.

import { request } from "./api.js";
import { el } from "./ui.js";

const ARCHIVES = new Set(["application/zip", "application/gzip", "application/x-tar", "application/x-7z-compressed"]);

// `image`, `audio`, `video`, `text`, `pdf`, `archive` or `other` (the share page's families).
export function family(contentType) {
  const major = String(contentType || "").split("/")[0];
  if (["image", "audio", "video", "text"].includes(major)) return major;
  if (contentType === "application/pdf") return "pdf";
  return ARCHIVES.has(contentType) ? "archive" : "other";
}

const waiting = new Map(); // img -> file id, until it comes on screen
let observer = null;

function watch(img, fileId) {
  if (!("IntersectionObserver" in window)) {
    load(img, fileId);
    return;
  }
  observer ??= new IntersectionObserver(
    (seen) => {
      for (const entry of seen) {
        if (!entry.isIntersecting) continue;
        observer.unobserve(entry.target);
        const id = waiting.get(entry.target);
        waiting.delete(entry.target);
        if (id) load(entry.target, id);
      }
    },
    { rootMargin: "200px 0px" }, // a little ahead of scrolling
  );
  waiting.set(img, fileId);
  observer.observe(img);
}

async function load(img, fileId) {
  try {
    const response = await request("GET", `/files/${fileId}/preview`, { headers: { Accept: "image/webp" } });
    const url = URL.createObjectURL(await response.blob());
    // Decoded once shown: the blob is not needed after that.
    img.addEventListener("load", () => URL.revokeObjectURL(url), { once: true });
    img.addEventListener("error", () => URL.revokeObjectURL(url), { once: true });
    img.src = url;
    img.classList.add("loaded");
  } catch {
    img.replaceWith(badge("image")); // gone meanwhile: a badge, as for any image
  }
}

function badge(kind) {
  return el("span", { class: `type ${kind}`, "aria-hidden": "true" });
}

// A file row's leading picture; `update(file)` gives the element to show for `file` now (the
// same <img> every time once it has a thumbnail, so a row's update never loads it again).
export function leadingPicture() {
  let img = null;
  return function update(file) {
    if (!file.has_preview) return badge(family(file.content_type));
    if (!img) {
      img = el("img", { class: "thumb", alt: "", width: 40, height: 40, "data-file-id": file.id });
      watch(img, file.id);
    }
    return img;
  };
}
