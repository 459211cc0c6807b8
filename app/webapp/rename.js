// Renaming in place, for a file's row and a folder's: a small form where the name was.

import { request } from "./api.js";
import { announce, el } from "./ui.js";

// `path` is the item's resource (`/files/{id}`, `/folders/{id}`), `item` what the row shows.
// The form starts from the version it reads first: a change made elsewhere meanwhile is a
// 412, not silently overwritten. `onSaved(item)` gets the renamed item, `onCancel(item)` the
// item as last read; `onError(text)` says why the form could not open. Resolves to the form
// (null when it could not open), for the row to put where the name was.
export async function renameForm({ path, item, onSaved, onCancel, onError }) {
  let etag;
  let current = item;
  try {
    const response = await request("GET", path);
    etag = response.headers.get("ETag");
    current = await response.json();
  } catch (failure) {
    onError(`${item.name} could not be renamed: ${failure.message}`);
    return null;
  }
  const inputId = `rename-${current.id}`;
  const input = el("input", { id: inputId, type: "text", value: current.name, maxlength: 255, required: true, "aria-describedby": `${inputId}-error` });
  const error = el("p", { id: `${inputId}-error`, class: "error", role: "alert" });
  const cancel = () => onCancel(current);
  const form = el(
    "form",
    { class: "rename" },
    el("label", { for: inputId, class: "visually-hidden", text: `New name for ${current.name}` }),
    input,
    el("button", { type: "submit", class: "small", text: "Save" }),
    el("button", { type: "button", class: "small secondary", text: "Cancel", onclick: cancel }),
    error,
  );
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape") cancel();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = input.value.trim();
    if (!name || name === current.name) return cancel();
    try {
      const headers = etag ? { "If-Match": etag } : {};
      const response = await request("PATCH", path, { body: { name }, headers });
      announce(`Renamed to ${name}`);
      onSaved(await response.json());
    } catch (failure) {
      if (failure.status === 409) {
        error.textContent = `This folder already has a file or folder named “${name}”. Choose another name.`;
      } else if (failure.status === 412) {
        error.textContent = "This was changed elsewhere (another tab or device) since you began. Its current name is shown now; rename again if you still want to.";
        try {
          const fresh = await request("GET", path);
          etag = fresh.headers.get("ETag");
          current = await fresh.json();
          input.value = current.name;
        } catch {
          // keep the message; the next listing shows the item as it is
        }
      } else {
        error.textContent = failure.message;
      }
      input.focus();
    }
  });
  // Once the form is on the page: the name is ready to be typed over.
  form.start = () => {
    input.focus();
    input.select();
  };
  return form;
}

// A row's rename in place: the function its Rename button calls. It puts the form where the
// name is (`slot`) and empties the row's `actions`; saved or cancelled, the row shows
// `update(item)` again (`setEditing` says while it is a form) and its Rename button has the
// focus back. `current()` is the row's item now, `path(item)` its resource.
export function renameInPlace({ path, current, slot, actions, onError, setEditing, update }) {
  const finish = (item) => {
    setEditing(false);
    update(item);
    actions.querySelector("button[aria-label^='Rename']")?.focus();
  };
  return async function start() {
    const item = current();
    const form = await renameForm({ path: path(item), item, onError, onSaved: finish, onCancel: finish });
    if (!form) return;
    setEditing(true);
    slot.replaceChildren(form);
    actions.replaceChildren();
    form.start();
  };
}
