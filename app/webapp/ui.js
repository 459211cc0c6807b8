// Small DOM helpers. Text goes in as text nodes, never as markup: a file named
// `<img src=x onerror=alert(1)>.txt` shows as exactly that.

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

// Follow a download URL (a grant's): the browser streams it to disk, as for any link (its
// Content-Disposition makes it a download); nothing of it passes through the page.
export function followDownload(url) {
  const link = el("a", { href: url, download: "", hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
}

// A form field as the app lays them out: its label (tied to the control's id), the control,
// then anything else (a hint).
export function field(label, control, ...more) {
  return el("div", { class: "field" }, el("label", { for: control.id, text: label }), control, ...more);
}

// A message as a sentence: it ends with a full stop (or ? or !), once.
export function sentence(text) {
  const trimmed = String(text ?? "").trim();
  return !trimmed || /[.?!…]$/.test(trimmed) ? trimmed : `${trimmed}.`;
}

const numberFormat = new Intl.NumberFormat("en");

// "1 file", "1,000 files": a count with its noun (`many` when the plural is not noun + s).
export function count(n, noun, many = `${noun}s`) {
  return `${numberFormat.format(n)} ${n === 1 ? noun : many}`;
}

// What a set of items holds, in words: "2 folders and 3 files".
export function foldersAndFiles(items) {
  const folders = items.filter((item) => item.kind === "folder").length;
  const files = items.length - folders;
  return [folders && count(folders, "folder"), files && count(files, "file")].filter(Boolean).join(" and ");
}

// Binary units written the IEC way, as the server and the CLI write them (quotas and limits
// are configured in binary and read back exactly: "100 GiB"); one decimal place under 10.
const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return "—";
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  if (unit === 0) return `${Math.round(value)} B`;
  return Number(value.toFixed(1)) < 10 ? `${value.toFixed(1)} ${UNITS[unit]}` : `${Math.round(value)} ${UNITS[unit]}`;
}

export function formatDuration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "—";
  if (seconds < 60) return `${Math.ceil(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export function formatDate(iso) {
  return iso ? dateFormat.format(new Date(iso)) : "—";
}

// One polite live region for status changes, put on the page by main.js: screen readers hear
// "report.pdf is ready" without the page moving focus.
export const announcer = el("div", { id: "announcer", class: "visually-hidden", role: "status", "aria-live": "polite" });

export function announce(text) {
  // The same text twice in a row is not re-read unless the region changes.
  announcer.textContent = text === announcer.textContent ? `${text}\u00a0` : text;
}
