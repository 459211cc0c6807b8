// Signing up and in (one form, two modes), and the account bar at the top once signed in.

import { ApiError, call, session } from "./api.js";
import { el, field } from "./ui.js";

// `more` (optional) goes under the form: the single sign-on button (sso.js).
export function authForm({ onSignedIn, onForgot, more = null }) {
  let mode = "login";
  let signupMode = "open"; // who may register here (GET /signup): open, invite or closed
  let invitation = null; // the token of the invitation link this page was opened with

  const title = el("h1", { id: "auth-title" });
  const email = el("input", { id: "email", name: "email", type: "email", autocomplete: "username", required: true, maxlength: 320 });
  const password = el("input", { id: "password", name: "password", type: "password", required: true, maxlength: 1024, "aria-describedby": "password-hint" });
  const hint = el("p", { id: "password-hint", class: "hint", text: "At least 10 characters." });
  // Not ticked by default: on a shared computer the next person would be signed in.
  const remember = el("input", { id: "remember", name: "remember", type: "checkbox" });
  const rememberField = el(
    "div",
    { class: "field check" },
    remember,
    el("label", { for: "remember", text: "Keep me signed in" }),
    el("p", { id: "remember-hint", class: "hint", text: "On this browser, across tabs, until you log out. Not on a shared computer." }),
  );
  remember.setAttribute("aria-describedby", "remember-hint");
  const error = el("p", { id: "auth-error", class: "error", role: "alert" });
  const submit = el("button", { type: "submit" });
  const switchText = el("span");
  const switchButton = el("button", { type: "button", class: "link", onclick: () => setMode(mode === "login" ? "signup" : "login") });
  const switchLine = el("p", { class: "switch" }, switchText, " ", switchButton);
  const invited = el("p", { id: "auth-invited", class: "notice", hidden: true, text: "You have been invited: choose your password to create your account." });
  const forgot = el("button", { type: "button", class: "link", text: "Forgot password?", onclick: () => onForgot(email.value.trim()) });
  const forgotLine = el("p", { class: "forgot" }, forgot);
  const root = el(
    "section",
    { class: "card auth", "aria-labelledby": "auth-title", hidden: true },
    title,
    el("p", { class: "muted", text: "Upload files of any size, get them back as ZIP archives, share them with a link." }),
    invited,
    el("form", { novalidate: true, onsubmit: submitForm }, field("E-mail", email), field("Password", password, hint), rememberField, error, submit),
    forgotLine,
    more,
    switchLine,
  );

  function setMode(next) {
    mode = next;
    const signup = mode === "signup";
    title.textContent = signup ? "Create an account" : "Log in";
    submit.textContent = signup ? "Sign up" : "Log in";
    switchText.textContent = signup ? "Have an account?" : "No account yet?";
    switchButton.textContent = signup ? "Log in" : "Sign up";
    password.autocomplete = signup ? "new-password" : "current-password";
    hint.hidden = !signup;
    invited.hidden = !(signup && invitation);
    // "Sign up" only where one may: not when sign-up is closed, nor by invitation without one.
    switchLine.hidden = !signup && !mayRegister();
    forgotLine.hidden = signup;
    error.textContent = "";
  }

  function mayRegister() {
    return signupMode === "open" || (signupMode === "invite" && invitation !== null);
  }

  async function submitForm(event) {
    event.preventDefault();
    const address = email.value.trim();
    if (!address || !password.value) {
      error.textContent = "Enter your e-mail address and a password.";
      return;
    }
    if (mode === "signup" && password.value.length < 10) {
      error.textContent = "Choose a password of at least 10 characters.";
      password.focus();
      return;
    }
    const body = { email: address, password: password.value };
    const kept = remember.checked;
    submit.disabled = true;
    try {
      if (mode === "signup") await call("POST", "/users/register", { body: invitation ? { ...body, invitation } : body });
      const token = await call("POST", "/users/login", { body: { ...body, remember: kept } });
      if (invitation) {
        invitation = null;
        history.replaceState(null, "", location.pathname);
      }
      session.signedIn(token, kept);
      password.value = "";
      await onSignedIn();
    } catch (failure) {
      if (failure instanceof ApiError && failure.status === 401) error.textContent = "That e-mail address and password do not match an account.";
      else if (failure instanceof ApiError && failure.status === 409) error.textContent = "An account with this e-mail address exists already. Log in instead.";
      else error.textContent = failure.message;
    } finally {
      submit.disabled = false;
    }
  }

  // Shown in log-in mode, with a message (why the session ended) or none.
  function show(message) {
    setMode("login");
    error.textContent = message;
    root.hidden = false;
    askSignup();
  }

  // Shown in sign-up mode for the invitation of `token` (the page's `#/invite/<token>`).
  function invite(token) {
    invitation = token;
    setMode("signup");
    root.hidden = false;
    email.focus();
    askSignup();
  }

  async function askSignup() {
    try {
      signupMode = (await call("GET", "/signup")).mode;
    } catch {
      return; // the switch stays as it is; registering says why if it is refused
    }
    if (mode === "login") switchLine.hidden = !mayRegister();
  }

  setMode("login");
  return {
    root,
    show,
    invite,
    // Whether "Keep me signed in" is ticked (single sign-on carries it through the provider).
    get remember() {
      return remember.checked;
    },
  };
}

export function accountBar({ onLogout }) {
  const whoami = el("span", { id: "whoami", class: "whoami" });
  const root = el(
    "div",
    { class: "account", hidden: true },
    whoami,
    el("button", { type: "button", class: "secondary", text: "Log out", onclick: onLogout }),
  );
  return {
    root,
    show(address) {
      whoami.textContent = address;
    },
  };
}
