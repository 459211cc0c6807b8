// Password recovery. "Forgot password?" asks for a link by e-mail (the same answer whether
// or not the address has an account); the link opens the reset screen (`#/reset/{token}`,
// read by main.js), which sets a new password and signs in.

import { ApiError, call, session } from "./api.js";
import { el, field, sentence } from "./ui.js";

export function forgotForm({ onBack }) {
  const email = el("input", { id: "forgot-email", name: "email", type: "email", autocomplete: "username", required: true, maxlength: 320 });
  const error = el("p", { id: "forgot-error", class: "error", role: "alert" });
  const submit = el("button", { type: "submit", text: "Send the link" });
  const form = el("form", { novalidate: true, onsubmit: send }, field("E-mail address", email), error, submit);
  const done = el("p", { id: "forgot-done", class: "notice", role: "status", hidden: true });
  const root = el(
    "section",
    { class: "card auth", "aria-labelledby": "forgot-title", hidden: true },
    el("h1", { id: "forgot-title", text: "Forgot your password?" }),
    el("p", { class: "muted", text: "Enter your account's e-mail address: we send it a link to choose a new password." }),
    form,
    done,
    el("p", { class: "switch" }, el("button", { type: "button", class: "link", text: "Back to log in", onclick: () => onBack() })),
  );

  async function send(event) {
    event.preventDefault();
    const address = email.value.trim();
    if (!address) {
      error.textContent = "Enter your e-mail address.";
      email.focus();
      return;
    }
    submit.disabled = true;
    error.textContent = "";
    try {
      const answer = await call("POST", "/users/password-reset", { body: { email: address } });
      form.hidden = true;
      done.textContent = `${sentence(answer.detail)} Check your mail, and its spam folder.`;
      done.hidden = false;
    } catch (failure) {
      error.textContent = sentence(failure.message);
    } finally {
      submit.disabled = false;
    }
  }

  return {
    root,
    show(address = "") {
      email.value = address;
      form.hidden = false;
      done.hidden = true;
      error.textContent = "";
      root.hidden = false;
      email.focus();
    },
  };
}

export function resetForm({ onSignedIn, onForgot }) {
  let token = "";
  const password = el("input", { id: "new-password", name: "new-password", type: "password", autocomplete: "new-password", required: true, maxlength: 1024, "aria-describedby": "new-password-hint" });
  const hint = el("p", { id: "new-password-hint", class: "hint", text: "At least 10 characters. Every device signed in to your account is signed out." });
  const error = el("p", { id: "reset-error", class: "error", role: "alert" });
  const submit = el("button", { type: "submit", text: "Set the password" });
  const again = el("button", { type: "button", class: "link", text: "Ask for a new link", onclick: () => onForgot() });
  const root = el(
    "section",
    { class: "card auth", "aria-labelledby": "reset-title", hidden: true },
    el("h1", { id: "reset-title", text: "Choose a new password" }),
    el("form", { novalidate: true, onsubmit: submitForm }, field("New password", password, hint), error, submit),
    el("p", { class: "switch" }, "Link not working?", " ", again),
  );

  async function submitForm(event) {
    event.preventDefault();
    if (password.value.length < 10) {
      error.textContent = "Choose a password of at least 10 characters.";
      password.focus();
      return;
    }
    submit.disabled = true;
    error.textContent = "";
    try {
      const answer = await call("POST", "/users/password-reset/confirm", { body: { token, new_password: password.value } });
      session.signedIn(answer, false);
      password.value = "";
      await onSignedIn();
    } catch (failure) {
      error.textContent = failure instanceof ApiError ? sentence(failure.message) : "The password could not be set; try again.";
    } finally {
      submit.disabled = false;
    }
  }

  return {
    root,
    show(fromLink) {
      token = fromLink;
      password.value = "";
      error.textContent = "";
      root.hidden = false;
      password.focus();
    },
  };
}
