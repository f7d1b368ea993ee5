// Policy adherence: accepted and refused exports per day, by reason,
// workflow, principal and device, and the policy versions in force per
// device. The counts are the archive's (GET /v1/stats, kept with the
// index): no scan of exports per page view.

import * as api from "./api.js";
import { h, mount, table, short, fmtTime, errorText } from "./ui.js";
import { stackedDays, bars, legend, fillDays, COLORS } from "./charts.js";
import { searchHref } from "./exports.js";

const DIMENSIONS = [["reason", "refusal reason"], ["workflow", "workflow"], ["principal", "principal"], ["device", "device"], ["classification", "classification"]];
const TOP = 7;

function isoDay(d) { return d.toISOString().slice(0, 10); }

// topKeys are the keys with the largest totals, the rest summed as "other".
function topKeys(days) {
  const tot = {};
  for (const d of days) for (const [k, v] of Object.entries(d.counts)) tot[k] = (tot[k] || 0) + v;
  const keys = Object.keys(tot).sort((a, b) => tot[b] - tot[a] || a.localeCompare(b));
  return { keys, tot };
}

function fold(days, keys) {
  if (keys.length <= TOP) return { days, keys };
  const keep = new Set(keys.slice(0, TOP));
  const out = days.map(d => {
    const c = {};
    for (const [k, v] of Object.entries(d.counts)) { const kk = keep.has(k) ? k : "other"; c[kk] = (c[kk] || 0) + v; }
    return { day: d.day, counts: c };
  });
  return { days: out, keys: [...keys.slice(0, TOP), "other"] };
}

export async function render(params) {
  const to = params.to || isoDay(new Date());
  const from = params.from || isoDay(new Date(Date.now() - 29 * 86400e3));
  const by = params.by || "reason";
  const form = h("form", { class: "filters card", id: "policy-range" },
    h("label", {}, "From (UTC day)", h("input", { type: "date", name: "from", value: from })),
    h("label", {}, "To (UTC day)", h("input", { type: "date", name: "to", value: to })),
    h("label", {}, "Break refusals and exports down by", h("select", { name: "by" }, DIMENSIONS.map(([v, t]) => h("option", { value: v, selected: by === v }, t)))),
    params.device ? h("input", { type: "hidden", name: "device", value: params.device }) : null,
    h("span", { class: "actions" }, h("button", { class: "primary", type: "submit" }, "Show")));
  form.addEventListener("submit", ev => {
    ev.preventDefault();
    const p = {};
    for (const [k, v] of new FormData(form)) if (v) p[k] = v;
    location.hash = "#/policy" + api.query(p);
  });
  const status = h("div", { class: "card", id: "chart-status" }, h("p", { class: "loading" }, "Loading…"));
  const dim = h("div", { class: "card", id: "chart-by" }, h("p", { class: "loading" }, "Loading…"));
  const versions = h("div", { id: "policy-versions" }, h("p", { class: "loading" }, "Loading…"));
  mount(h("h1", {}, "Policy adherence"), form,
    h("div", { class: "charts" }, status, dim),
    h("h2", {}, "Policy versions in force per device"),
    h("p", { class: "hint" }, "The policy each device's exports were checked against, newest first, from the export index."),
    versions);

  const [st, bd] = await Promise.allSettled([
    api.get("/v1/stats", { by: "status", from, to }),
    api.get("/v1/stats", { by, from, to }),
  ]);
  if (st.status === "fulfilled") {
    const days = fillDays(st.value.days || [], from, to);
    const keys = ["accepted", "refused"];
    const tot = topKeys(days).tot;
    status.replaceChildren(h("h2", {}, "Accepted and refused exports per day"),
      legend(keys.map(k => k + " (" + (tot[k] || 0) + ")")), stackedDays("accepted and refused exports per day", days, keys),
      table("status-table", "stats-status", [{ key: "day", label: "Day" }, ...keys.map(k => ({ key: k, label: k, num: true, cell: r => r.counts[k] || 0, csv: r => r.counts[k] || 0 }))],
        days.filter(d => Object.keys(d.counts).length).reverse(), { caption: "days with exports, newest first" }));
  } else status.replaceChildren(h("p", { class: "empty" }, errorText(st.reason)));
  if (bd.status === "fulfilled") {
    const days = fillDays(bd.value.days || [], from, to);
    const { keys, tot } = topKeys(days);
    const f = fold(days, keys);
    const label = DIMENSIONS.find(d => d[0] === by)[1];
    const param = by === "reason" ? "reason" : by;
    dim.replaceChildren(h("h2", {}, "Per day by " + label),
      legend(f.keys, 2), stackedDays("exports per day by " + label, f.days, f.keys, 2),
      h("h2", {}, "Totals by " + label),
      bars("totals by " + label, keys.map((k, i) => ({ label: k, value: tot[k], color: COLORS[(Math.min(i, TOP) + 2) % COLORS.length] }))),
      table("by-table", "stats-" + by, [
        { key: "key", label: label, wrap: true, cell: r => h("a", { href: searchHref({ [param]: r.key, from: from + "T00:00:00Z" }) }, r.key) },
        { key: "total", label: "exports", num: true },
      ], keys.map(k => ({ key: k, total: tot[k] })), { caption: keys.length + " values" }));
  } else dim.replaceChildren(h("p", { class: "empty" }, errorText(bd.reason)));

  try {
    versions.replaceChildren(await policyVersions(params.device));
  } catch (e) {
    versions.replaceChildren(h("p", { class: "empty" }, errorText(e)));
  }
}

// policyVersions shows, for every device, the policy of its newest export
// and, for one device, the policies of its newest exports
// (GET /v1/policies).
async function policyVersions(device) {
  const page = await api.get("/v1/policies", { device });
  const rows = page.items || [];
  const cols = [
    { key: "device", label: "Device", cell: r => h("a", { class: "policy-history", href: "#/policy" + api.query({ device: r.device }) }, r.device) },
    { key: "policy", label: "Policy", cell: r => h("a", { href: searchHref({ device: r.device }) }, short(r.policy)) },
    { key: "current", label: "In force", cell: r => r.current ? "yes" : "earlier", csv: r => r.current ? "yes" : "no" },
    { key: "last", label: "Last export under it", cell: r => fmtTime(r.last) },
  ];
  if (device) cols.push({ key: "first", label: "First export under it", cell: r => fmtTime(r.first) }, { key: "exports", label: "Exports", num: true });
  return table("policies-table", "policies", cols, rows, {
    caption: device ? "Policies of the newest 1000 exports of " + device : rows.length + " devices; pick one for its policy history",
    extra: device ? h("a", { class: "button", href: "#/policy" }, "All devices") : null,
    empty: "No exports indexed yet.",
  });
}
