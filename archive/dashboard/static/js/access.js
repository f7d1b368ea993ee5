// The access history: who read what, when, from where, per export, per
// person and per device, from the archive's access log.

import * as api from "./api.js";
import { h, mount, table, fmtTime, short, statusBadge, badge, pager, errorText } from "./ui.js";
import { exportHref } from "./exports.js";

function target(t) {
  if (!t) return "";
  const parts = [];
  if (t.device && t.export) parts.push(h("a", { href: exportHref(t.device, t.export) }, t.device + " " + t.export));
  else if (t.device) parts.push(h("a", { href: "#/access?device=" + encodeURIComponent(t.device) }, t.device));
  for (const [k, v] of Object.entries(t)) {
    if (k === "device" || (k === "export" && t.device)) continue;
    const text = typeof v === "object" ? JSON.stringify(v) : String(v);
    parts.push(" ", k === "bundle" ? h("span", {}, "bundle ", short(text)) : k + "=" + text);
  }
  return h("span", {}, parts);
}

// decryptText says why a decrypt entry's plaintext was asked, and what
// was handed out or why it was refused; "" for other entries.
function decryptText(e) {
  const d = e.type === "decrypt" && e.decrypt;
  if (!d) return "";
  const why = [d.case ? "case " + d.case : "", d.reason ? "reason: " + d.reason : ""].filter(Boolean).join("; ");
  return why + (d.refused ? " — refused: " + d.refused : d.plaintext ? " — plaintext " + d.plaintext : "");
}

function decryptCell(e) {
  const t = decryptText(e);
  return t ? h("span", { class: "why " + (e.decrypt.refused ? "bad" : "") }, t) : "";
}

export const accessColumns = [
  { key: "index", label: "#", num: true },
  { key: "time", label: "Time", cell: r => fmtTime(r.entry.time), csv: r => r.entry.time },
  { key: "user", label: "Who", cell: r => h("a", { href: "#/access?user=" + encodeURIComponent(r.entry.user || "") }, r.entry.user || ""), csv: r => r.entry.user },
  { key: "roles", label: "Roles", cell: r => (r.entry.roles || []).join(", "), csv: r => (r.entry.roles || []).join(" ") },
  { key: "action", label: "Action", cell: r => r.entry.type === "decrypt" ? h("span", { class: "decrypt-entry" }, r.entry.action, " ", badge("decrypt", "warn")) : r.entry.action, csv: r => r.entry.action },
  { key: "outcome", label: "Outcome", cell: r => statusBadge(r.entry.outcome), csv: r => r.entry.outcome },
  { key: "target", label: "Target", wrap: true, cell: r => target(r.entry.target), csv: r => r.entry.target ? JSON.stringify(r.entry.target) : "" },
  { key: "decrypt", label: "Decryption", wrap: true, cell: r => decryptCell(r.entry), csv: r => decryptText(r.entry) },
  { key: "remote", label: "From", cell: r => r.entry.remote, csv: r => r.entry.remote },
  { key: "via", label: "Via", cell: r => r.entry.via, csv: r => r.entry.via },
];

// accessTable shows access log items ({index, entry}).
export function accessTable(id, name, items, opts) {
  return table(id, name, accessColumns, items, { empty: "No access recorded.", ...(opts || {}) });
}

let trail = { base: "", cursors: [] };

export async function render(params) {
  const cursor = params.cursor || "";
  const base = { ...params };
  delete base.cursor;
  const key = api.query(base);
  if (trail.base !== key) trail = { base: key, cursors: [] };
  const fields = [["user", "Person"], ["device", "Device (site/name)"], ["export", "Export id"], ["bundle", "Bundle"]];
  const form = h("form", { class: "filters card", id: "access-search" },
    fields.map(([k, l]) => h("label", {}, l, h("input", { name: k, value: params[k] || "", autocomplete: "off" }))),
    h("span", { class: "actions" }, h("button", { class: "primary", type: "submit" }, "Show"), h("a", { class: "button", href: "#/access" }, "Clear")));
  form.addEventListener("submit", ev => {
    ev.preventDefault();
    const p = {};
    for (const [k, v] of new FormData(form)) if (v) p[k] = v.trim();
    location.hash = "#/access" + api.query(p);
  });
  const out = h("div", {}, h("p", { class: "loading" }, "Loading…"));
  mount(h("h1", {}, "Access history"),
    h("p", { class: "hint" }, "Every read of the archive's API, this page's included, from the archive's signed access log."),
    form, out);
  let page;
  try {
    page = await api.get("/v1/access", { ...base, limit: 100, cursor });
  } catch (e) {
    out.replaceChildren(h("p", { class: "empty" }, errorText(e)));
    return;
  }
  const next = () => { trail.cursors.push(cursor); location.hash = "#/access" + api.query({ ...base, cursor: page.next }); };
  const prev = () => { const c = trail.cursors.pop() || ""; location.hash = "#/access" + api.query({ ...base, cursor: c }); };
  out.replaceChildren(accessTable("access-table", "access", page.items || [], {
    caption: (page.items || []).length + " reads" + (page.next ? " on this page; more follow" : ""),
    extra: pager(trail.cursors.length > 0 || !!cursor, page.next, prev, next),
  }));
}
