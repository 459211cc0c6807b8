// The web app's entry: it makes each view, puts them on the page and wires them together.
// A view is a function that makes its own markup, keeps its own state in its closure, and
// returns its root element with the few methods others call (see the README). The address's
// fragment says which folder is open (`#/folders/{id}`; `#/` or none: the root), or that the
// Links view is (`#/links`), the API tokens (`#/tokens`) or the Sessions view (`#/sessions`), so
// the browser's back button and a reload keep the place. A password reset link opens the reset
// screen (`#/reset/{token}`).

import { adminView } from "./admin.js";
import { call, session } from "./api.js";
import { accountBar, authForm } from "./auth.js";
import { fileList } from "./files.js";
import { linksView } from "./links.js";
import { moveDialog } from "./move.js";
import { forgotForm, resetForm } from "./reset.js";
import { sessionsView } from "./sessions.js";
import { shareDialog } from "./share.js";
import { finishSignIn, ssoButton } from "./sso.js";
import { tokensView } from "./tokens.js";
import { announce, announcer, el, sentence } from "./ui.js";
import { unfinishedUploads } from "./unfinished.js";
import { uploadPanel } from "./uploads.js";
import { usagePanel } from "./usage.js";

const FOLDER_IN_HASH = /^#\/folders\/([0-9a-fA-F-]{36})$/;
const INVITE_IN_HASH = /^#\/invite\/([A-Za-z0-9_-]{1,256})$/;
// Back from single sign-on: the one-time code the server sent the browser here with.
const SSO_CODE_IN_HASH = /^#\/sso\/([A-Za-z0-9_-]{20,100})$/;
const RESET_IN_HASH = /^#\/reset\/([A-Za-z0-9_-]+)$/;
const USAGE_EVERY_MS = 1000; // a folder of many files asks for the usage once a second at most

// index.html is the page's frame: its top bar and its main landmark (and a note for
// browsers without JavaScript); the views go in there.
const main = document.querySelector("main");
// A link made or revoked: the list's Shared marks follow.
const share = shareDialog({ onChange: () => files.refresh() });
const links = linksView({ onChange: () => files.refresh() });
const tokens = tokensView();
const move = moveDialog();
const sessions = sessionsView({ onEndedHere: () => signedOut("You signed out of this browser.") });
const usage = usagePanel();
const sso = ssoButton({ remember: () => auth.remember });
const auth = authForm({ onSignedIn: showApp, onForgot: showForgot, more: sso.root });
const forgot = forgotForm({ onBack: () => showAuth() });
const reset = resetForm({ onSignedIn: afterReset, onForgot: () => showForgot() });
const account = accountBar({ onLogout: logout });
const files = fileList({
  onShare: share.open,
  onMove: move.open,
  onChange: refreshUsage,
  // A mark for tests and the benchmark (bench/web.py): the list is there and answers.
  onListed: (listed) => {
    if (listed) app.dataset.loaded = "true";
    else delete app.dataset.loaded;
  },
  onOpened: (folder) => {
    document.title = folder ? `Instashare: ${folder.name}` : "Instashare: your files";
  },
});
const uploads = uploadPanel({
  folderId: () => files.folderId,
  onCreated: refreshUsage, // the upload now reserves its size: the usage bar shows it
  onFinished: (fileId) => {
    files.added(fileId);
    refreshUsage();
  },
  onManyFinished: () => {
    files.refresh();
    refreshUsage();
  },
  unfinishedUrl: (...about) => unfinished.urlFor(...about),
});
// Uploads cut short (a reload, a closed tab), with Discard; asked for with the usage.
const unfinished = unfinishedUploads({ activeIds: uploads.activeIds, onDiscarded: refreshUsage });
const nav = el("nav", { class: "views", "aria-label": "Views" });
const filesTab = el("a", { href: "#/", text: "Files" });
const linksTab = el("a", { href: "#/links", text: "Links" });
// Administrators only (GET /users/me says `role`); the API checks it anyway.
const adminTab = el("a", { href: "#/admin", text: "Admin", hidden: true });
const adminPanel = adminView();
const sessionsTab = el("a", { href: "#/sessions", text: "Sessions" });
const tokensTab = el("a", { href: "#/tokens", text: "API tokens" });
nav.append(filesTab, linksTab, tokensTab, sessionsTab, adminTab);
// The files view: the upload box, the unfinished uploads and the list (each hides parts of
// itself as it needs; the Links view hides them all at once).
const filesView = el("div", { class: "files-view" }, uploads.root, unfinished.root, files.root);
const app = el("div", { id: "app-view", hidden: true }, nav, usage.root, filesView, links.root, tokens.root, sessions.root, adminPanel.root);

const folderInHash = () => FOLDER_IN_HASH.exec(location.hash)?.[1] ?? null;
const VIEWS = { "#/links": "links", "#/tokens": "tokens", "#/sessions": "sessions", "#/admin": "admin" };
const resetInHash = () => RESET_IN_HASH.exec(location.hash)?.[1] ?? null;

// The files (with the upload box), the Links, the API tokens, the Sessions or the Admin view, as the
// address says.
function showView({ focus = true } = {}) {
  const view = VIEWS[location.hash] ?? "files";
  filesView.hidden = view !== "files";
  usage.root.hidden = view === "admin";
  for (const [tab, name] of [[filesTab, "files"], [linksTab, "links"], [tokensTab, "tokens"], [sessionsTab, "sessions"], [adminTab, "admin"]]) {
    if (view === name) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  if (view !== "links") links.close();
  if (view !== "tokens") tokens.close();
  if (view !== "sessions") sessions.close();
  if (view !== "admin") adminPanel.close();
  if (view === "admin") {
    document.title = "Instashare: administration";
    return adminPanel.open({ focus });
  }
  if (view === "links") {
    document.title = "Instashare: your links";
    return links.open({ focus });
  }
  if (view === "tokens") {
    document.title = "Instashare: API tokens";
    return tokens.open({ focus });
  }
  if (view === "sessions") {
    document.title = "Instashare: your sessions";
    return sessions.open({ focus });
  }
  return files.open(folderInHash(), { focus });
}

// Only one of the forms that stand in for the app (log in, forgot, reset) at a time.
function hideApp() {
  files.stop();
  app.hidden = true;
  account.root.hidden = true;
  for (const form of [auth, forgot, reset]) form.root.hidden = true;
}

function showAuth(message = "") {
  hideApp();
  if (resetInHash()) history.replaceState(null, "", location.pathname);
  auth.show(message);
  document.title = "Instashare: log in";
}

function showForgot(address = "") {
  hideApp();
  if (resetInHash()) history.replaceState(null, "", location.pathname);
  forgot.show(address);
  document.title = "Instashare: forgot password";
}

function showReset(token) {
  hideApp();
  reset.show(token);
  document.title = "Instashare: new password";
}

// Signed in with the new password: the spent link leaves the address bar and the history.
async function afterReset() {
  history.replaceState(null, "", location.pathname);
  await showApp();
}

async function showApp() {
  for (const form of [auth, forgot, reset]) form.root.hidden = true;
  app.hidden = false;
  account.root.hidden = false;
  document.title = "Instashare: your files";
  main.focus(); // before the list loads, so it never takes the focus from a keyboard user
  await Promise.all([usageNow(), showView({ focus: false })]);
}

// The usage bar, asked for at most once a second: the last change of a burst is always shown.
let usageTimer = null;
let usageAsked = 0;
function refreshUsage() {
  if (usageTimer !== null) return;
  const wait = Math.max(0, usageAsked + USAGE_EVERY_MS - performance.now());
  usageTimer = setTimeout(() => {
    usageTimer = null;
    usageNow();
  }, wait);
}

async function usageNow() {
  usageAsked = performance.now();
  try {
    const [me] = await Promise.all([call("GET", "/users/me"), unfinished.refresh()]);
    account.show(me.email);
    adminTab.hidden = me.role !== "admin";
    usage.show(me.usage);
    share.limit(me.limits);
  } catch {
    // the bar keeps its last value; the list shows the error, if any
  }
}

async function logout() {
  try {
    await call("POST", "/users/logout"); // ends the session, and clears a kept one's cookie
  } catch {
    // the token is forgotten here either way
  }
  signedOut("");
  announce("Logged out");
}

function signedOut(message) {
  session.forget();
  history.replaceState(null, "", location.pathname);
  showAuth(message);
}

window.addEventListener("hashchange", () => {
  const token = resetInHash();
  const invite = INVITE_IN_HASH.exec(location.hash)?.[1];
  if (token) showReset(token);
  else if (!reset.root.hidden) {
    // Away from the reset screen (the back button): where the session and the address say.
    if (session.token) showApp();
    else {
      showAuth();
      if (invite) auth.invite(invite);
    }
  } else if (session.token && !app.hidden) showView();
  else if (invite) auth.invite(invite);
});
document.querySelector(".topbar-inner").append(account.root);
main.append(auth.root, forgot.root, reset.root, app);
document.body.append(share.root, move.root, announcer);
session.onExpired = () => showAuth("Your session has ended. Log in again.");
sso.load();
const ssoCode = SSO_CODE_IN_HASH.exec(location.hash)?.[1];
if (ssoCode) finishSso(ssoCode);
else if (resetInHash()) showReset(resetInHash());
else {
  // A kept session (a new tab, a reload) trades its cookie for a token first, silently.
  session.resume().then((held) => {
    if (held) showApp();
    else if (INVITE_IN_HASH.test(location.hash)) {
      showAuth();
      auth.invite(INVITE_IN_HASH.exec(location.hash)[1]);
    } else showAuth();
  });
}

// Back from the single sign-on provider: signed in, or the log-in page saying why not.
async function finishSso(code) {
  try {
    await finishSignIn(code);
  } catch (failure) {
    showAuth(sentence(failure.message));
    return;
  }
  showApp();
}
