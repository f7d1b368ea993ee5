// The export search: filters over every indexed field, a time range and
// paging, results as a table.

import * as api from "./api.js";
import { h, mount, table, fmtTime, short, statusBadge, pager, notice, errorText } from "./ui.js";

// FIELDS are the search parameters of GET /v1/exports, in form order.
const FIELDS = [
  ["export", "Export id"], ["device", "Device (site/name)"], ["site", "Site"], ["workflow", "Workflow"],
  ["app", "App"], ["principal", "Principal"], ["classification", "Classification"], ["reason", "Refusal reason"],
  ["bundle", "Bundle (sha256:…)"], ["log_index", "Archive log index"],
];

// exportHref is the dashboard's address of one export.
export function exportHref(device, id) {
  const i = device.indexOf("/");
  return "#/export/" + encodeURIComponent(device.slice(0, i)) + "/" + encodeURIComponent(device.slice(i + 1)) + "/" + encodeURIComponent(id);
}

// searchHref is the dashboard's address of a search.
export function searchHref(params) { return "#/exports" + api.query(params); }

// exportColumns are the columns of an export table.
export const exportColumns = [
  { key: "time", label: "Time (agent)", cell: r => fmtTime(r.time) },
  { key: "device", label: "Device", cell: r => h("a", { href: searchHref({ device: r.device }) }, r.device) },
  { key: "export", label: "Export", cell: r => h("a", { class: "export-link", href: exportHref(r.device, r.export) }, r.export) },
  { key: "status", label: "Status", cell: r => statusBadge(r.status) },
  { key: "workflow", label: "Workflow" },
  { key: "app", label: "App" },
  { key: "principal", label: "Principal" },
  { key: "classification", label: "Class" },
  { key: "reason", label: "Refusal", wrap: true, cell: r => r.reason ? (r.refusedBy ? r.refusedBy + ": " : "") + r.reason : "" , csv: r => r.reason || "" },
  { key: "bundle", label: "Bundle", cell: r => short(r.bundle) },
  { key: "logIndex", label: "Log", num: true },
  { key: "seq", label: "Seq", num: true },
  { key: "policy", label: "Policy", cell: r => short(r.policy) },
  { key: "acceptedAt", label: "Accepted", cell: r => fmtTime(r.acceptedAt) },
];

// Paging: the cursors that led to the current page, per search.
let trail = { base: "", cursors: [] };
let refresh = null;

// toRFC3339 reads a datetime-local value as UTC.
function toRFC3339(v) { return v ? (v.length === 16 ? v + ":00Z" : v + "Z") : ""; }
function fromRFC3339(v) { return v ? v.replace(/(:\d\d)?(\.\d+)?Z$/, (m, sec) => sec || "").slice(0, 19) : ""; }

export async function render(params) {
  const cursor = params.cursor || "";
  const base = { ...params };
  delete base.cursor;
  const baseKey = api.query(base);
  if (trail.base !== baseKey) trail = { base: baseKey, cursors: [] };

  const inputs = FIELDS.map(([k, label]) => h("label", {}, label, h("input", { name: k, value: params[k] || "", autocomplete: "off" })));
  const form = h("form", { class: "filters card", id: "search" },
    inputs,
    h("label", {}, "Status", h("select", { name: "status" }, ["", "accepted", "refused"].map(v => h("option", { value: v, selected: (params.status || "") === v }, v || "any")))),
    h("label", {}, "From (UTC)", h("input", { name: "from", type: "datetime-local", step: 1, value: fromRFC3339(params.from) })),
    h("label", {}, "To (UTC)", h("input", { name: "to", type: "datetime-local", step: 1, value: fromRFC3339(params.to) })),
    h("label", {}, "Order", h("select", { name: "order" }, [["desc", "newest first"], ["asc", "oldest first"]].map(([v, t]) => h("option", { value: v, selected: (params.order || "desc") === v }, t)))),
    h("label", {}, "Per page", h("select", { name: "limit" }, ["25", "50", "100", "250"].map(v => h("option", { value: v, selected: (params.limit || "50") === v }, v)))),
    h("span", { class: "actions" }, h("button", { class: "primary", type: "submit" }, "Search"), h("a", { class: "button", href: "#/exports" }, "Clear")));
  form.addEventListener("submit", ev => {
    ev.preventDefault();
    const p = {};
    for (const [k, v] of new FormData(form)) if (v) p[k] = k === "from" || k === "to" ? toRFC3339(v) : v.trim();
    if (p.order === "desc") delete p.order;
    const target = searchHref(p);
    if (location.hash === target) render(p); else location.hash = target;
  });
  const results = h("div", { id: "results" }, h("p", { class: "loading" }, "Searching…"));
  mount(h("h1", {}, "Exports"), form, results);

  current = { base, cursor, el: results };
  await load(current);
}

// current is the search on screen.
let current = null;

async function load(cur) {
  const { base, cursor, el: results } = cur;
  const q = { ...base, limit: base.limit || 50, cursor };
  let page;
  try {
    page = await api.get("/v1/exports", q);
  } catch (e) {
    results.replaceChildren(h("p", { class: "empty" }, errorText(e)));
    return;
  }
  const items = page.items || [];
  const live = !cursor && (base.order || "desc") === "desc";
  const keys = items.map(r => r.device + "\u0000" + r.seq);
  if (live && cur.shown) for (let i = 0; i < items.length; i++) items[i]._new = !cur.shown.has(keys[i]);
  cur.shown = new Set(keys);
  const next = () => { trail.cursors.push(cursor); location.hash = searchHref({ ...base, cursor: page.next }); };
  const prev = () => { const c = trail.cursors.pop() || ""; location.hash = searchHref({ ...base, cursor: c }); };
  const caption = items.length + (page.next ? " exports on this page; more follow" : " exports") + (live ? " · new exports appear here live" : "");
  results.replaceChildren(table("exports-table", "exports", exportColumns, items, {
    caption, empty: page.next ? "No match among the entries read for this page; follow Next." : "No export matches.",
    extra: pager(trail.cursors.length > 0 || !!cursor, page.next, prev, next),
  }));
}

// onIndexed is called for each export.indexed event: the first page of a
// newest-first search on screen shows new matches without a reload (one
// search at most every 300 ms).
export function onIndexed() {
  const cur = current;
  if (!cur || !cur.el.isConnected || cur.cursor || (cur.base.order && cur.base.order !== "desc")) return;
  clearTimeout(refresh);
  refresh = setTimeout(() => load(cur).catch(e => notice(errorText(e), true)), 300);
}
