// The published API at /api/v1, with the session's token. Nothing else is called.

const BASE = "/api/v1";
// sessionStorage: gone when the tab closes, never sent by the browser on its own (no
// cookie, so no CSRF to defend against), and not shared with other tabs as localStorage is.
const TOKEN_KEY = "instashare.token";

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && problem.detail) || `The server answered ${status}.`);
    this.status = status;
    this.problem = problem || {};
  }
}

export const session = {
  get token() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
  onExpired: () => {},
};

export function authHeaders() {
  const token = session.token;
  return token ? { Authorization: `Bearer ${token}` } : {};
}

export async function request(method, path, { body, headers = {} } = {}) {
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
    if (response.status === 401 && session.token) session.onExpired();
    throw new ApiError(response.status, problem);
  }
  return response;
}

export async function call(method, path, options) {
  const response = await request(method, path, options);
  return response.status === 204 ? null : response.json();
}

export const UPLOADS = `${BASE}/uploads`;
