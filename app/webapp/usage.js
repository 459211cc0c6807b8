// The storage bar at the top of the files: what is used (stored and reserved by uploads
// under way) of the quota, and how many files.

import { el, formatBytes } from "./ui.js";

export function usagePanel() {
  const text = el("span", { id: "usage-text", class: "usage-text", text: "Storage" });
  const bar = el("progress", { max: 1, value: 0, "aria-labelledby": "usage-text" });
  const root = el(
    "section",
    { class: "card usage", "aria-labelledby": "usage-title" },
    el("h1", { id: "usage-title", class: "visually-hidden", text: "Your files" }),
    el("div", { class: "usage-row" }, text, bar),
  );

  // `usage` as GET /users/me gives it.
  function show(usage) {
    const { bytes_stored: stored, bytes_reserved: reserved = 0, quota_bytes: quota, file_count: count } = usage;
    const used = stored + reserved;
    bar.max = quota || 1;
    bar.value = Math.min(used, bar.max);
    text.textContent = `${formatBytes(used)} of ${formatBytes(quota)} used · ${count} file${count === 1 ? "" : "s"}`;
  }

  return { root, show };
}
