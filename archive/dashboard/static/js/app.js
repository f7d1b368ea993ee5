// The dashboard's entry point: the session, the pages by address (#/...),
// and the live feed from the archive's server-sent events.

import * as api from "./api.js";
import { h, mount, notice, fmtTime, errorText } from "./ui.js";
import * as exportsPage from "./exports.js";
import * as exportPage from "./export.js";
import * as accessPage from "./access.js";
import * as policyPage from "./policy.js";
import * as fleetPage from "./fleet.js";

let me = null;       // the session: {user, roles, via, expires}
let config = { name: "edgeseal archive" };
let events = null;   // the EventSource
let why = "";        // why the last session ended ("expired", "signedout")
let returnTo = "";   // the page to go back to after signing in again
let fleetRefresh = null;

// refreshFleet redraws the fleet, when it is on screen, after a bundle or
// an alert (one redraw at most every 500 ms).
function refreshFleet() {
  if (route().page !== "fleet") return;
  clearTimeout(fleetRefresh);
  fleetRefresh = setTimeout(() => { if (me && route().page === "fleet") fleetPage.render().catch(e => notice(errorText(e), true)); }, 500);
}

// can reports whether the session holds one of the roles.
function can(...roles) { return !!me && (me.roles || []).some(r => roles.includes(r)); }

// home is the first page for the session's roles: the export search for
// auditors and operators, policy adherence for policy administrators.
function home() { return can("auditor", "operator") ? "exports" : "policy"; }

function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, qs] = hash.split("?", 2);
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { page: parts[0] || home(), rest: parts.slice(1), params: Object.fromEntries(new URLSearchParams(qs || "")) };
}

async function show() {
  const r = route();
  if (!me) { signInPage(r.params.why || why); return; }
  if (r.page === "signin") { location.hash = "#/" + home(); return; }
  for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("on", a.dataset.page === r.page || (r.page === "export" && a.dataset.page === "exports"));
  notice("");
  try {
    switch (r.page) {
      case "exports": await exportsPage.render(r.params); break;
      case "export": await exportPage.render(r.rest, config); break;
      case "access": await accessPage.render(r.params); break;
      case "policy": await policyPage.render(r.params); break;
      case "fleet": await fleetPage.render(r.params); break;
      default: mount(h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/exports" }, "Search exports")));
    }
  } catch (e) {
    notice(errorText(e), true);
  }
}

function signInPage(reason) {
  document.getElementById("top").hidden = true;
  document.getElementById("live").hidden = true;
  const msg = h("p", { class: "error", id: "signin-error", role: "alert" },
    reason === "expired" ? "Your session has ended. Sign in again." : reason === "signedout" ? "You have signed out." : "");
  const form = h("form", { id: "signin" },
    h("label", {}, "User", h("input", { name: "user", id: "user", autocomplete: "username", required: true })),
    h("label", {}, "Password", h("input", { name: "password", id: "password", type: "password", autocomplete: "current-password", required: true })),
    h("button", { class: "primary", type: "submit" }, "Sign in"), msg);
  form.addEventListener("submit", async ev => {
    ev.preventDefault();
    msg.textContent = "";
    const fd = new FormData(form);
    try {
      me = await api.signIn(fd.get("user"), fd.get("password"));
    } catch (e) {
      msg.textContent = e.status === 401 ? "Wrong user name or password."
        : e.status === 403 ? "This account has no archive role (auditor, operator or policy-admin): it cannot use the dashboard."
        : "Sign-in failed: " + e.message;
      return;
    }
    started();
    const back = returnTo;
    why = returnTo = "";
    if (back) location.hash = back;
    else if (location.hash.startsWith("#/signin") || !location.hash) location.hash = "#/" + home();
    else show();
  });
  const sso = config.oidcLogin ? h("p", {}, h("a", { class: "button", id: "oidc-login", href: config.oidcLogin }, "Sign in with your organization's account")) : null;
  mount(h("div", { class: "signin card" }, h("h1", {}, config.name), h("p", { class: "hint" }, "Sign in with your archive account."), form, sso));
  document.getElementById("user").focus();
}

function ended(reason) {
  if (!me) return;
  me = null;
  why = reason;
  if (reason === "expired" && !location.hash.startsWith("#/signin")) returnTo = location.hash;
  if (events) { events.close(); events = null; }
  document.getElementById("live-list").replaceChildren();
  if (!location.hash.startsWith("#/signin")) location.hash = "#/signin?why=" + reason;
  else show();
}

function started() {
  document.getElementById("top").hidden = false;
  document.getElementById("live").hidden = false;
  document.getElementById("who").textContent = me.user + " (" + (me.roles || []).join(", ") + ")";
  // Pages the roles cannot read are not offered (the API refuses them anyway).
  const pages = { exports: can("auditor", "operator"), access: can("auditor"), policy: true, fleet: true };
  for (const a of document.querySelectorAll("header nav a")) a.hidden = !pages[a.dataset.page];
  live();
}

// live opens the event stream; the browser reconnects by itself.
function live() {
  if (events) events.close();
  const state = document.getElementById("live-state");
  events = new EventSource("/v1/events");
  events.onopen = () => { state.className = "live on"; state.title = "Connected: new bundles and alerts show here at once"; };
  events.onerror = async () => {
    state.className = "live off";
    state.title = "Not connected; retrying";
    // An ended session makes the stream fail: find out and go to sign-in.
    try { await api.session(); } catch (e) { if (e.status === 401) ended("expired"); }
  };
  const list = document.getElementById("live-list");
  const add = (cls, ...content) => {
    const li = h("li", { class: cls + " fresh" }, ...content);
    list.prepend(li);
    while (list.children.length > 50) list.lastChild.remove();
  };
  events.addEventListener("bundle.accepted", ev => {
    const d = JSON.parse(ev.data);
    add("bundle", h("strong", {}, "bundle accepted"), " ", h("a", { href: exportsPage.searchHref({ bundle: d.bundle }) }, d.device + " #" + d.logIndex),
      h("br"), h("span", { class: "muted" }, fmtTime(d.time) + " · " + d.exports + " exports, " + d.refused + " refused"));
    refreshFleet();
  });
  events.addEventListener("export.indexed", ev => {
    const d = JSON.parse(ev.data);
    add("export", "export ", h("a", { href: exportsPage.exportHref(d.device, d.export) }, d.export), " " + d.status + " on " + d.device);
    exportsPage.onIndexed();
  });
  events.addEventListener("alert", ev => {
    const d = JSON.parse(ev.data);
    add("alert", h("strong", {}, "alert " + d.kind), " " + d.device, h("br"), h("span", {}, (d.reasons || []).join("; ")));
    refreshFleet();
  });
}

async function main() {
  api.setUnauthorizedHandler(() => ended("expired"));
  try { config = await (await fetch("/assets/config.json")).json(); } catch (e) { /* defaults */ }
  document.title = config.name;
  document.getElementById("archive-name").textContent = config.name;
  document.getElementById("signout").addEventListener("click", async () => {
    try { await api.signOut(); } catch (e) { /* signed out anyway */ }
    ended("signedout");
  });
  try {
    me = await api.session();
    started();
  } catch (e) {
    me = null;
  }
  window.addEventListener("hashchange", show);
  show();
}

main();
