// One share link as the owner sees it, in the share dialog and in the Links view: its URL
// with Copy, its state, what it serves, its counts and expiry, and Revoke while it works.

import { call } from "./api.js";
import { announce, count, el, foldersAndFiles, formatDate } from "./ui.js";

// A link's state in words (the API's `exhausted` is a link whose downloads are used up).
export const STATE_TEXT = { active: "Active", expired: "Expired", exhausted: "Used up", revoked: "Revoked" };

// "2 of 3 downloads", "5 downloads": what the link has given.
export function downloadsText(share) {
  if (share.max_downloads === null) return count(share.downloads, "download");
  const noun = share.max_downloads === 1 ? "download" : "downloads";
  return `${share.downloads} of ${share.max_downloads} ${noun}`;
}

export function linkFacts(share) {
  const what = share.kind && share.kind !== "file" ? [share.kind === "folder" ? "folder" : foldersAndFiles(share.items || [])] : [];
  return [
    share.serves === "zip" ? "ZIP" : "Original",
    ...what,
    share.has_password ? "password" : "no password",
    downloadsText(share),
    share.expires_at ? `${share.state === "expired" ? "expired" : "expires"} ${formatDate(share.expires_at)}` : "never expires",
  ];
}

export const stateBadge = (share) => el("span", { class: `badge ${share.state}`, text: STATE_TEXT[share.state] || share.state });

// The path of the link's QR code on this server (an SVG it draws: /s/{token}/qr.svg).
export function qrPath(url) {
  return `${new URL(url).pathname.replace(/\/$/, "")}/qr.svg`;
}

// `label`: the accessible name of the link's field; `onRevoked(share)` after a revoke;
// `onError(text)` when one fails. The element is `tag` (an `li` in a list).
export function linkItem(share, { label, onRevoked, onError, tag = "li", more = [] }) {
  const link = el("input", { type: "text", readonly: true, value: share.url, "aria-label": label });
  const copyButton = el("button", { type: "button", class: "small secondary", text: "Copy", onclick: () => copy(share.url, copyButton, link) });
  const revoke = async () => {
    try {
      await call("DELETE", `/shares/${share.id}`);
      announce("Link revoked");
      onRevoked({ ...share, state: "revoked" });
    } catch (failure) {
      onError(`The link could not be revoked: ${failure.message}`);
    }
  };
  return el(
    tag,
    { class: `share ${share.state}`, "data-share-id": share.id },
    ...more,
    el("div", { class: "copy-row" }, link, copyButton),
    el("p", { class: "share-facts" }, stateBadge(share), ` ${linkFacts(share).join(" · ")}`),
    share.state === "active" && el("button", { type: "button", class: "small danger", text: "Revoke", "aria-label": `Revoke ${label.replace(/^Link/, "the link")}`, onclick: revoke }),
  );
}

const copied = new WeakMap(); // button -> the timer that puts "Copy" back

// Copy `text`; the button says "Copied" for 2 s (`resetCopy` puts "Copy" back at once).
export async function copy(text, button, input) {
  resetCopy(button);
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
    announce("Link copied");
    copied.set(
      button,
      setTimeout(() => resetCopy(button), 2000),
    );
  } catch {
    input.select(); // no clipboard permission: Ctrl+C does the rest
    announce("Select the link and copy it");
  }
}

export function resetCopy(button) {
  clearTimeout(copied.get(button));
  copied.delete(button);
  button.textContent = "Copy";
}
