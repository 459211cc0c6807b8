// Unfinished uploads, above the files: those cut short by a reload, a closed tab or a lost
// connection (GET /uploads), each with how far it got, the way to resume it (choose the same
// file again: tus-js-client finds its URL by the file's fingerprint) and Discard (tus
// termination, which frees what it reserved). Uploads under way in this tab are not listed:
// the upload card shows them.

import { authHeaders, call } from "./api.js";
import { announce, el, formatBytes } from "./ui.js";

// `activeIds()`: the uploads this tab is sending; `onDiscarded()` once one is discarded.
export function unfinishedUploads({ activeIds, onDiscarded }) {
  const list = el("ul", { id: "unfinished-list", class: "unfinished-list" });
  const notice = el("p", { class: "error", role: "alert" });
  const root = el(
    "section",
    { id: "unfinished", class: "card unfinished", "aria-labelledby": "unfinished-title", hidden: true },
    el("h2", { id: "unfinished-title", text: "Unfinished uploads" }),
    el("p", { class: "hint", text: "Choose the same file again to resume one where it stopped; each holds its full size of your storage until it finishes or is discarded." }),
    list,
    notice,
  );
  let asking = null;
  let known = []; // the unfinished uploads, as last listed

  function row(upload) {
    const discard = el("button", { type: "button", class: "secondary small", text: "Discard", "aria-label": `Discard the unfinished upload of ${upload.name}` });
    const where = upload.relative_dir ? ` in ${upload.relative_dir}` : "";
    const item = el(
      "li",
      { class: "unfinished-upload" },
      el("span", { class: "upload-name", text: upload.name }),
      el("span", { class: "unfinished-detail", text: ` — ${progressText(upload.offset, upload.length)}${where} · choose it again to resume · ` }),
      discard,
    );
    discard.addEventListener("click", async () => {
      discard.disabled = true;
      notice.textContent = "";
      try {
        const response = await fetch(upload.url, { method: "DELETE", headers: { ...authHeaders(), "Tus-Resumable": "1.0.0" } });
        if (!response.ok && response.status !== 404) throw new Error(String(response.status));
      } catch {
        discard.disabled = false;
        notice.textContent = `${upload.name} could not be discarded. Try again in a moment.`;
        return;
      }
      item.remove();
      known = known.filter((u) => u.id !== upload.id); // choosing the file again starts afresh
      root.hidden = list.children.length === 0;
      announce(`The unfinished upload of ${upload.name} is discarded`);
      onDiscarded();
    });
    return item;
  }

  // Asks again (one question at a time; a call made meanwhile is answered by the next).
  async function refresh() {
    if (asking) return asking;
    asking = (async () => {
      try {
        const { items } = await call("GET", "/uploads");
        known = items;
        const busy = new Set(activeIds());
        const shown = items.filter((upload) => !busy.has(upload.id));
        list.replaceChildren(...shown.map(row));
        root.hidden = shown.length === 0;
      } catch {
        // the list keeps what it showed; the files list reports a lost connection
      } finally {
        asking = null;
      }
    })();
    return asking;
  }

  // The URL of the unfinished upload that `file`, bound for `path` under the folder `into`,
  // would continue: the same name, length and place. (A different file of the same name and
  // size would continue it too; tus-js-client's own fingerprint, kept by the browser that
  // began an upload, also holds the file's modification time, and is tried first.)
  function urlFor(file, path, into) {
    const slash = path.lastIndexOf("/");
    const dir = slash > 0 ? path.slice(0, slash) : null;
    const found = known.find((u) => u.name === file.name && u.length === file.size && (u.folder_id ?? null) === (into ?? null) && (u.relative_dir ?? null) === dir);
    return found && !activeIds().includes(found.id) ? found.url : null;
  }

  return { root, refresh, urlFor };
}

// "23 of 50 MiB": the unit once when both sizes read in the same one.
function progressText(offset, length) {
  const [sent, whole] = [formatBytes(offset), formatBytes(length)];
  const unit = whole.split(" ")[1];
  return sent.endsWith(` ${unit}`) ? `${sent.split(" ")[0]} of ${whole}` : `${sent} of ${whole}`;
}
