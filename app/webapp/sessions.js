// The Sessions view (#/sessions): every device signed in to the account (GET
// /users/me/sessions), newest first, a page at a time: its device, where from, when it
// began and was last used, which is this one; End for each other one, and "Sign out
// everywhere else".

import { call } from "./api.js";
import { announce, el } from "./ui.js";

const PAGE_SIZE = 50;
const KINDS = { kept: "Kept signed in", plain: "One log-in", cli: "Command line" };

// `onEndedHere()`: this browser's own session was ended (it is signed out).
export function sessionsView({ onEndedHere = () => {} } = {}) {
  let cursor = null;
  let generation = 0;

  const title = el("h2", { id: "sessions-title", tabindex: -1, text: "Your sessions" });
  const intro = el("p", { class: "muted", text: "Where your account is signed in. End a session you do not recognise: that device is signed out at once." });
  const error = el("p", { id: "sessions-error", class: "error", role: "alert" });
  const list = el("ul", { id: "sessions-list", class: "share-list", "aria-labelledby": "sessions-title" });
  const more = el("button", { type: "button", class: "secondary", hidden: true, text: "Show more sessions", onclick: () => load() });
  const others = el("button", { type: "button", class: "secondary", id: "end-others", text: "Sign out everywhere else", onclick: endOthers });
  const root = el("section", { id: "sessions-view", class: "card", "aria-labelledby": "sessions-title", hidden: true }, title, intro, error, list, more, el("p", {}, others));

  async function open({ focus = true } = {}) {
    generation += 1;
    cursor = null;
    list.replaceChildren();
    error.textContent = "";
    root.hidden = false;
    if (focus) title.focus();
    await load();
  }

  function close() {
    root.hidden = true;
    generation += 1;
  }

  async function load() {
    const asked = generation;
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (cursor) query.set("cursor", cursor);
    more.disabled = true;
    try {
      const page = await call("GET", `/users/me/sessions?${query}`);
      if (asked !== generation) return;
      list.append(...page.items.map(item));
      cursor = page.next_cursor;
      more.hidden = !cursor;
    } catch (failure) {
      error.textContent = `Your sessions could not be listed: ${failure.message}`;
    } finally {
      more.disabled = false;
    }
  }

  function item(found) {
    const when = (iso) => new Date(iso).toLocaleString();
    const name = el("strong", { text: found.device });
    const details = el(
      "p",
      { class: "share-facts" },
      `${KINDS[found.kind] ?? found.kind} · from ${found.address} · signed in ${when(found.created_at)} · last used ${when(found.last_used_at)}`,
    );
    const about = el("div", { class: "session-about" }, el("p", { class: "session-device" }, name, found.current ? [" ", el("span", { class: "badge", text: "This browser" })] : null), details);
    const row = el("li", { class: "share session", "data-session": found.id }, about);
    const end = el("button", {
      type: "button",
      class: "secondary",
      text: found.current ? "Sign out here" : "End",
      "aria-label": found.current ? "Sign out here, on this browser" : `End the session of ${found.device}`,
      onclick: async () => {
        end.disabled = true;
        try {
          await call("DELETE", `/users/me/sessions/${found.id}`);
          row.remove();
          announce(`Ended the session of ${found.device}`);
          if (found.current) onEndedHere();
        } catch (failure) {
          error.textContent = `That session could not be ended: ${failure.message}`;
          end.disabled = false;
        }
      },
    });
    row.append(end);
    return row;
  }

  async function endOthers() {
    others.disabled = true;
    try {
      const { ended } = await call("DELETE", "/users/me/sessions");
      announce(ended === 1 ? "Ended 1 other session" : `Ended ${ended} other sessions`);
      await open({ focus: false });
    } catch (failure) {
      error.textContent = `The other sessions could not be ended: ${failure.message}`;
    } finally {
      others.disabled = false;
    }
  }

  return { root, open, close };
}
