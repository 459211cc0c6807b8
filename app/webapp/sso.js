// Single sign-on on the log-in page: "Sign in with <provider>" when the server has it, and
// the end of a sign-in, when the server sends the browser back to `#/sso/<code>`. The code
// is good once, for a minute; the app trades it for a session (or for the sentence saying
// why not) and takes it off the address at once.

import { call, session } from "./api.js";
import { el } from "./ui.js";

// The button, shown once the server says single sign-on is on (hidden until then, and if
// the question fails: the password form works without it).
export function ssoButton() {
  const link = el("a", { class: "button sso-button", href: "/api/v1/users/sso" });
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
  const token = await call("POST", "/users/sso/exchange", { body: { code } });
  session.token = token.access_token;
}
