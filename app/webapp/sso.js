// Single sign-on on the log-in page: "Sign in with <provider>" when the server has it, and
// the end of a sign-in, when the server sends the browser back to `#/sso/<code>`. The code
// is good once, for a minute; the app trades it for a session (or for the sentence saying
// why not) and takes it off the address at once.

import { call, session } from "./api.js";
import { el } from "./ui.js";

const REMEMBER_KEY = "instashare.sso-remember";

// The button, shown once the server says single sign-on is on (hidden until then, and if
// the question fails: the password form works without it).
export function ssoButton({ remember = () => false } = {}) {
  // The log-in form's "Keep me signed in", as it was when the person left for the provider.
  const link = el("a", {
    class: "button sso-button",
    href: "/api/v1/users/sso",
    onclick: () => sessionStorage.setItem(REMEMBER_KEY, remember() ? "1" : ""),
  });
  const root = el("div", { class: "sso", hidden: true }, el("p", { class: "or muted", text: "or" }), link);
  return {
    root,
    async load() {
      try {
        const provider = await call("GET", "/users/sso/provider");
        link.textContent = `Sign in with ${provider.label}`;
        root.hidden = !provider.enabled;
      } catch {
        root.hidden = true;
      }
    },
  };
}

// Trade the code for a session; throws the server's sentence (an ApiError) when the sign-in
// did not succeed. The code (main.js read it from the address) leaves the address, and so
// the history, first.
export async function finishSignIn(code) {
  history.replaceState(null, "", location.pathname);
  session.token = null;
  const remember = sessionStorage.getItem(REMEMBER_KEY) === "1";
  sessionStorage.removeItem(REMEMBER_KEY);
  const answer = await call("POST", "/users/sso/exchange", { body: { code, remember } });
  session.signedIn(answer, remember);
}
