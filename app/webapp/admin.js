// The Admin view (#/admin), shown to administrators only (GET /users/me says `role`): the
// server's totals, its accounts (search, pages, disable or enable, a quota in MB or GB,
// make admin), invitations (a new one's link shown once, with Copy; the list; Revoke) and
// the audit log. Everything goes through /api/v1/admin, which checks the role itself.

import { call } from "./api.js";
import { copy } from "./link-item.js";
import { count, el, field, formatBytes, formatDate } from "./ui.js";

const PAGE_SIZE = 25;
const UNIT_BYTES = { MB: 1024 ** 2, GB: 1024 ** 3 };
const ACTION_TEXT = {
  "user.role": "changed the role of",
  "user.quota": "set the quota of",
  "user.disable": "disabled",
  "user.enable": "enabled",
  "user.delete": "deleted",
  "invitation.create": "made an invitation",
  "invitation.revoke": "revoked an invitation",
  "invitation.use": "registered with an invitation",
  "admin.create": "made an administrator from the command line:",
};

const admin = (path, options) => call(options?.method || "GET", `/admin${path}`, options);

export function adminView() {
  let generation = 0;
  const title = el("h2", { id: "admin-title", tabindex: -1, text: "Administration" });
  const error = el("p", { id: "admin-error", class: "error", role: "alert" });
  const totals = el("dl", { id: "admin-totals", class: "admin-totals" });
  const users = usersSection(error);
  const invitations = invitationsSection(error);
  const audit = auditSection(error);
  const root = el(
    "section",
    { id: "admin-view", class: "card admin", "aria-labelledby": "admin-title", hidden: true },
    title,
    error,
    el("h3", { text: "Totals" }),
    totals,
    users.root,
    invitations.root,
    audit.root,
  );

  async function showTotals() {
    const t = await admin("/totals");
    const facts = [
      ["Accounts", `${t.users} (${count(t.admins, "administrator")}, ${t.disabled} disabled)`],
      ["Files", `${t.files} · ${formatBytes(t.bytes_stored)}`],
      ["Working links", String(t.links)],
      ["Uploads in progress", String(t.uploads)],
    ];
    totals.replaceChildren(...facts.map(([term, value]) => el("div", {}, el("dt", { text: term }), el("dd", { text: value }))));
  }

  async function open({ focus = true } = {}) {
    generation += 1;
    root.hidden = false;
    error.textContent = "";
    if (focus) title.focus();
    try {
      await Promise.all([showTotals(), users.load(true), invitations.load(), audit.load(true)]);
    } catch (failure) {
      error.textContent = `The administration view could not be loaded: ${failure.message}`;
    }
  }

  // After any change: the totals and the log follow.
  users.onChange = invitations.onChange = () => Promise.all([showTotals(), audit.load(true)]).catch(() => {});
  return {
    root,
    open,
    close() {
      generation += 1;
      root.hidden = true;
    },
  };
}

function usersSection(error) {
  let cursor = null;
  let asked = 0; // the newest listing asked for: an older one answering late is dropped
  const search = el("input", { id: "admin-search", type: "search", maxlength: 254, placeholder: "part of an address" });
  const summary = el("p", { id: "admin-users-count", class: "muted" });
  const body = el("tbody");
  const more = el("button", { type: "button", class: "secondary load-more", hidden: true, text: "Show more accounts", onclick: () => section.load(false) });
  const head = el("tr", {}, ...["Account", "Role", "State", "Files", "Stored", "Quota", "Last seen", "Actions"].map((text) => el("th", { scope: "col", text })));
  const section = {
    onChange: () => {},
    root: el(
      "section",
      { "aria-labelledby": "admin-users-title" },
      el("h3", { id: "admin-users-title", text: "Accounts" }),
      el(
        "form",
        { class: "controls", role: "search", onsubmit: (event) => { event.preventDefault(); section.load(true); } },
        field("Search accounts", search),
        el("button", { type: "submit", class: "secondary", text: "Search" }),
      ),
      summary,
      el("table", { id: "admin-users", class: "files admin-table" }, el("thead", {}, head), body),
      more,
    ),
    async load(fresh) {
      if (fresh) cursor = null;
      const query = new URLSearchParams({ limit: String(PAGE_SIZE), sort: "-created_at" });
      if (search.value.trim()) query.set("q", search.value.trim());
      if (cursor) query.set("cursor", cursor);
      const mine = ++asked;
      const page = await admin(`/users?${query}`);
      if (mine !== asked) return;
      if (fresh) body.replaceChildren();
      body.append(...page.items.map(row));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      const matching = page.total === 1 ? " matches" : " match";
      summary.textContent = `${count(page.total, "account")}${search.value.trim() ? matching : ""}`;
    },
  };

  async function change(user, patch) {
    error.textContent = "";
    try {
      const updated = await admin(`/users/${user.id}`, { method: "PATCH", body: patch });
      asked += 1; // a listing asked before this change would show it undone: dropped
      body.querySelector(`tr[data-user-id="${user.id}"]`)?.replaceWith(row(updated));
      section.onChange();
    } catch (failure) {
      error.textContent = `${user.email}: ${failure.message}`;
    }
  }

  function row(user) {
    const tr = el("tr", { "data-user-id": user.id });
    const disabled = user.state === "disabled";
    const toggle = el("button", {
      type: "button",
      class: `small ${disabled ? "secondary" : "danger"}`,
      text: disabled ? "Enable" : "Disable",
      "aria-label": `${disabled ? "Enable" : "Disable"} ${user.email}`,
      onclick: () => change(user, { disabled: !disabled }),
    });
    const promote = user.role === "admin" ? null : el("button", {
      type: "button", class: "small secondary", text: "Make admin", "aria-label": `Make admin: ${user.email}`,
      onclick: () => change(user, { role: "admin" }),
    });
    tr.append(
      el("td", { class: "name", "data-label": "Account", text: user.email }),
      el("td", { "data-label": "Role", text: user.role }),
      el("td", { "data-label": "State" }, el("span", { class: `badge ${disabled ? "revoked" : "active"}`, text: user.state })),
      el("td", { class: "num", "data-label": "Files", text: String(user.file_count) }),
      el("td", { class: "num", "data-label": "Stored", text: formatBytes(user.bytes_stored) }),
      el("td", { "data-label": "Quota" }, quotaForm(user)),
      el("td", { "data-label": "Last seen", text: formatDate(user.last_seen_at) }),
      el("td", { class: "actions", "data-label": "Actions" }, toggle, promote),
    );
    return tr;
  }

  // The quota in MB or GB (binary, as the server counts), or empty for the server's.
  function quotaForm(user) {
    const id = `quota-${user.id}`;
    const gb = user.effective_quota_bytes % UNIT_BYTES.GB === 0;
    const unitOf = gb ? "GB" : "MB";
    const amount = el("input", {
      id, type: "number", min: 0, step: "any", class: "quota-amount",
      value: user.quota_bytes === null ? "" : String(user.quota_bytes / UNIT_BYTES[unitOf]),
      placeholder: String(user.effective_quota_bytes / UNIT_BYTES[unitOf]),
    });
    const unit = el("select", { "aria-label": `Unit of the quota of ${user.email}` }, ...["MB", "GB"].map((u) => el("option", { value: u, text: u, selected: u === unitOf })));
    return el(
      "form",
      {
        class: "quota-form",
        onsubmit: (event) => {
          event.preventDefault();
          const raw = amount.value.trim();
          const value = raw === "" ? null : Math.round(Number(raw) * UNIT_BYTES[unit.value]);
          if (value !== null && !(value >= 0)) {
            error.textContent = `${user.email}: give the quota as a number of ${unit.value}, or leave it empty for the server's.`;
            return;
          }
          change(user, { quota_bytes: value });
        },
      },
      el("label", { for: id, class: "visually-hidden", text: `Quota of ${user.email} (empty: the server's)` }),
      amount,
      unit,
      el("button", { type: "submit", class: "small secondary", text: "Set", "aria-label": `Set the quota of ${user.email}` }),
    );
  }

  return section;
}

function invitationsSection(error) {
  const email = el("input", { id: "invite-email", type: "email", maxlength: 320, autocomplete: "off" });
  const days = el("input", { id: "invite-days", type: "number", min: 1, max: 90, value: 7, required: true });
  const link = el("input", { id: "invite-link", readonly: true });
  const copyButton = el("button", { type: "button", text: "Copy", onclick: () => copy(link.value, copyButton, link) });
  const fresh = el(
    "div",
    { id: "invite-new", class: "share-new", hidden: true },
    el("div", { class: "share-new-link" }, el("label", { for: "invite-link", text: "Invitation link (shown this once)" }), el("div", { class: "copy-row" }, link, copyButton)),
  );
  const list = el("ul", { id: "invitations", class: "share-list", "aria-labelledby": "admin-invitations-title" });
  const section = {
    onChange: () => {},
    root: el(
      "section",
      { "aria-labelledby": "admin-invitations-title" },
      el("h3", { id: "admin-invitations-title", text: "Invitations" }),
      el(
        "form",
        { id: "invite-form", class: "controls", onsubmit: create },
        field("Only for this e-mail (optional)", email),
        field("Expires after (days)", days),
        el("button", { type: "submit", text: "Create invitation" }),
      ),
      fresh,
      list,
    ),
    async load() {
      const page = await admin(`/invitations?limit=${PAGE_SIZE}`);
      list.replaceChildren(...page.items.map(item));
    },
  };

  async function create(event) {
    event.preventDefault();
    error.textContent = "";
    const body = { expires_in_days: Number(days.value) };
    if (email.value.trim()) body.email = email.value.trim();
    try {
      const made = await admin("/invitations", { method: "POST", body });
      link.value = made.link;
      fresh.hidden = false;
      email.value = "";
      link.focus();
      link.select();
      await section.load();
      section.onChange();
    } catch (failure) {
      error.textContent = `The invitation was not made: ${failure.message}`;
    }
  }

  function item(invitation) {
    const who = invitation.email || "anyone with the link";
    const revoke = invitation.state !== "pending" ? null : el("button", {
      type: "button", class: "small danger", text: "Revoke", "aria-label": `Revoke the invitation for ${who}`,
      onclick: async () => {
        try {
          await admin(`/invitations/${invitation.id}`, { method: "DELETE" });
          await section.load();
          section.onChange();
        } catch (failure) {
          error.textContent = `The invitation was not revoked: ${failure.message}`;
        }
      },
    });
    return el(
      "li",
      { class: "share", "data-invitation-id": invitation.id },
      el("p", { class: "link-what" }, `For ${who} `, el("span", { class: `badge ${invitation.state === "pending" ? "active" : "revoked"}`, text: invitation.state })),
      el("p", { class: "share-facts", text: `Made ${formatDate(invitation.created_at)} · expires ${formatDate(invitation.expires_at)}` }),
      revoke,
    );
  }

  return section;
}

function auditSection() {
  let cursor = null;
  const list = el("ol", { id: "audit-log", class: "audit-log" });
  const more = el("button", { type: "button", class: "secondary load-more", hidden: true, text: "Show older entries", onclick: () => section.load(false) });
  const section = {
    root: el("section", { "aria-labelledby": "admin-audit-title" }, el("h3", { id: "admin-audit-title", text: "Audit log" }), list, more),
    async load(fresh) {
      if (fresh) cursor = null;
      const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
      if (cursor) query.set("cursor", cursor);
      const page = await admin(`/audit?${query}`);
      if (fresh) list.replaceChildren();
      list.append(...page.items.map(entry));
      cursor = page.next_cursor;
      more.hidden = !cursor;
    },
  };

  function entry(event) {
    const who = event.actor_email || "the command line";
    const what = event.target && event.target.kind === "user" ? ` ${event.target.label}` : event.target?.label ? ` for ${event.target.label}` : "";
    const details = Object.keys(event.details || {}).length ? ` (${describe(event.details)})` : "";
    return el(
      "li",
      {},
      el("time", { datetime: event.at, text: formatDate(event.at) }),
      ` ${who} ${ACTION_TEXT[event.action] || event.action}${what}${details}`,
      event.address ? el("span", { class: "muted", text: ` from ${event.address}` }) : null,
    );
  }

  return section;
}

function describe(details) {
  if ("days" in details) return `valid for ${count(details.days, "day")}`;
  if ("from" in details) {
    const shown = (v) => (typeof v === "number" ? formatBytes(v) : v === null ? "the server's" : v);
    return `${shown(details.from)} → ${shown(details.to)}`;
  }
  return Object.entries(details).filter(([, v]) => v !== null).map(([k, v]) => `${k.replace("_", " ")}: ${v}`).join(", ");
}
