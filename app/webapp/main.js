// The web app's entry: signing up and in, the usage bar, and wiring the page together.

import { ApiError, call, session } from "./api.js";
import { added, initFiles, reload, stopFiles } from "./files.js";
import { initShare } from "./share.js";
import { $, announce, formatBytes } from "./ui.js";
import { startUploads, uploading } from "./uploads.js";

let mode = "login";

function setMode(next) {
  mode = next;
  const signup = mode === "signup";
  $("auth-title").textContent = signup ? "Create an account" : "Log in";
  $("auth-submit").textContent = signup ? "Sign up" : "Log in";
  $("auth-switch-text").textContent = signup ? "Have an account?" : "No account yet?";
  $("auth-switch").textContent = signup ? "Log in" : "Sign up";
  $("password").autocomplete = signup ? "new-password" : "current-password";
  $("password-hint").hidden = !signup;
  $("auth-error").textContent = "";
}

async function submitAuth(event) {
  event.preventDefault();
  const email = $("email").value.trim();
  const password = $("password").value;
  const error = $("auth-error");
  if (!email || !password) {
    error.textContent = "Enter your e-mail address and a password.";
    return;
  }
  if (mode === "signup" && password.length < 10) {
    error.textContent = "Choose a password of at least 10 characters.";
    $("password").focus();
    return;
  }
  $("auth-submit").disabled = true;
  try {
    if (mode === "signup") await call("POST", "/users/register", { body: { email, password } });
    const token = await call("POST", "/users/login", { body: { email, password } });
    session.token = token.access_token;
    $("password").value = "";
    await showApp();
  } catch (failure) {
    if (failure instanceof ApiError && failure.status === 401) error.textContent = "That e-mail address and password do not match an account.";
    else if (failure instanceof ApiError && failure.status === 409) error.textContent = "An account with this e-mail address exists already. Log in instead.";
    else error.textContent = failure.message;
  } finally {
    $("auth-submit").disabled = false;
  }
}

function showAuth(message = "") {
  stopFiles();
  $("app-view").hidden = true;
  $("account").hidden = true;
  $("auth-view").hidden = false;
  setMode("login");
  $("auth-error").textContent = message;
  document.title = "Instashare: log in";
}

async function showApp() {
  $("auth-view").hidden = true;
  $("app-view").hidden = false;
  $("account").hidden = false;
  document.title = "Instashare: your files";
  $("main").focus(); // before the list loads, so it never takes the focus from a keyboard user
  await Promise.all([refreshUsage(), reload()]);
}

async function refreshUsage() {
  try {
    const me = await call("GET", "/users/me");
    $("whoami").textContent = me.email;
    const { bytes_stored: stored, bytes_reserved: reserved = 0, quota_bytes: quota } = me.usage;
    const used = stored + reserved;
    const bar = $("usage-bar");
    bar.max = quota || 1;
    bar.value = Math.min(used, bar.max);
    const files = `${me.usage.file_count} file${me.usage.file_count === 1 ? "" : "s"}`;
    $("usage-text").textContent = `${formatBytes(used)} of ${formatBytes(quota)} used · ${files}`;
  } catch {
    // the bar keeps its last value; the list shows the error, if any
  }
}

async function logout() {
  try {
    await call("POST", "/users/logout");
  } catch {
    // the token is forgotten here either way
  }
  session.token = null;
  showAuth("");
  announce("Logged out");
}

function wireUploads() {
  const picker = $("picker");
  const zone = $("dropzone");
  const list = $("uploads");
  const start = (files) => {
    startUploads([...files], {
      list,
      onCreated: refreshUsage,
      onFinished: (id) => {
        added(id);
        refreshUsage();
      },
    });
  };
  $("choose").addEventListener("click", () => picker.click());
  picker.addEventListener("change", () => {
    start(picker.files);
    picker.value = "";
  });
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
  }
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    start(event.dataTransfer.files);
  });
  // A file dropped beside the zone must not replace the app with the file.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
  window.addEventListener("beforeunload", (event) => {
    if (uploading()) event.preventDefault();
  });
}

function init() {
  session.onExpired = () => showAuth("Your session has ended. Log in again.");
  $("auth-form").addEventListener("submit", submitAuth);
  $("auth-switch").addEventListener("click", () => setMode(mode === "login" ? "signup" : "login"));
  $("logout").addEventListener("click", logout);
  initFiles({ changed: refreshUsage });
  initShare();
  wireUploads();
  if (session.token) showApp();
  else showAuth();
}

init();
