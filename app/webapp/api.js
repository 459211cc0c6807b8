// The published API at /api/v1, with the session's token. Nothing else is called.

const BASE = "/api/v1";
// A plain session's token: in sessionStorage, gone when the tab closes, never sent by the
// browser on its own (no cookie, so no CSRF to defend against), and not shared with other
// tabs as localStorage is. A kept session's ("Keep me signed in") is in this script's
// memory only: its refresh token is an HttpOnly cookie no script reads, which the browser
// sends to the refresh route alone, and every tab or reload trades it for its own.
const TOKEN_KEY = "instashare.token";
// Only whether this browser asked to be kept signed in (no credential): a page that opens
// without a token then tries the refresh, instead of asking every visitor's browser.
const KEPT_KEY = "instashare.kept";
// A kept session's token is refreshed this long before it expires.
const EARLY_MS = 60_000;

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && problem.detail) || `The server answered ${status}.`);
    this.status = status;
    this.problem = problem || {};
  }
}

let memoryToken = null;
let refreshTimer = null;
let refreshing = null; // the refresh under way: every caller waits for the same one

export const session = {
  get token() {
    return memoryToken ?? sessionStorage.getItem(TOKEN_KEY);
  },
  set token(value) {
    memoryToken = null;
    sessionStorage.removeItem(TOKEN_KEY);
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
  },
  get kept() {
    return localStorage.getItem(KEPT_KEY) === "1";
  },
  // A log-in's answer: where its token goes depends on whether the session is kept.
  signedIn(answer, kept) {
    if (kept) {
      localStorage.setItem(KEPT_KEY, "1");
      sessionStorage.removeItem(TOKEN_KEY);
      keep(answer);
    } else {
      localStorage.removeItem(KEPT_KEY);
      this.token = answer.access_token;
    }
  },
  // Forget the tokens (the server ended the session, or is asked to).
  forget() {
    clearTimeout(refreshTimer);
    localStorage.removeItem(KEPT_KEY);
    this.token = null;
  },
  // A kept session's first token on this page (a new tab, a reload): true when it holds.
  async resume() {
    if (this.token) return true;
    if (!this.kept) return false;
    return refresh();
  },
  onExpired: () => {},
};

function keep(answer) {
  memoryToken = answer.access_token;
  clearTimeout(refreshTimer);
  const due = Math.max(answer.expires_in * 1000 - EARLY_MS, answer.expires_in * 500);
  // Unreachable meanwhile: the session may hold, and the next request's 401 tries again.
  refreshTimer = setTimeout(() => refresh().then((held) => held || session.kept || session.onExpired()), due);
}

// Trade the refresh cookie for a new token (once at a time); false when the session ended.
function refresh() {
  refreshing ??= (async () => {
    try {
      const response = await fetch(`${BASE}/users/session/refresh`, {
        method: "POST",
        headers: { Accept: "application/json", "Content-Type": "application/json" },
        body: "{}",
        cache: "no-store",
        credentials: "same-origin",
      });
      if (!response.ok) {
        if (response.status === 401) session.forget();
        return false;
      }
      keep(await response.json());
      return true;
    } catch {
      return false; // the server cannot be reached: the session may still hold
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

export function authHeaders() {
  const token = session.token;
  return token ? { Authorization: `Bearer ${token}` } : {};
}

export async function request(method, path, { body, headers = {} } = {}, retried = false) {
  const init = { method, headers: { Accept: "application/json", ...authHeaders(), ...headers }, cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(BASE + path, init);
  } catch {
    throw new ApiError(0, { detail: "The server cannot be reached. Check your connection and try again." });
  }
  if (!response.ok) {
    let problem = null;
    try {
      problem = await response.json();
    } catch {
      // not JSON: the status says enough
    }
    if (response.status === 401 && session.token) {
      // A kept session's token may have run out (a computer that slept): refreshed once.
      if (!retried && memoryToken && (await refresh())) return request(method, path, { body, headers }, true);
      session.forget();
      session.onExpired();
    }
    throw new ApiError(response.status, problem);
  }
  return response;
}

export async function call(method, path, options) {
  const response = await request(method, path, options);
  return response.status === 204 ? null : response.json();
}

export const UPLOADS = `${BASE}/uploads`;
