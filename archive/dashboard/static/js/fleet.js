// The fleet: each device's status, key and PCRs, last bundle, delivery lag,
// the outbox its agent reported and open alerts.

import * as api from "./api.js";
import { h, mount, table, fmtTime, short, statusBadge, badge, errorText } from "./ui.js";
import { bars, COLORS } from "./charts.js";
import { searchHref } from "./exports.js";

function lag(s) {
  if (s === undefined || s === null) return "";
  if (s < 120) return Math.round(s) + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  if (s < 172800) return (s / 3600).toFixed(1) + " h";
  return (s / 86400).toFixed(1) + " d";
}

function lagClass(s) { return s === undefined ? "muted" : s > 86400 ? "bad" : s > 3600 ? "warn" : "ok"; }

// lagChart draws the largest lags in seconds, minutes or hours, whichever
// reads best for the largest.
function lagChart(lagged) {
  const top = lagged.length ? lagged[0].lagSeconds : 0;
  const [div, unit] = top < 120 ? [1, " s"] : top < 7200 ? [60, " min"] : [3600, " h"];
  return bars("delivery lag per device", lagged.map(d => ({ label: d.device, value: d.lagSeconds / div, color: d.lagSeconds > 3600 ? COLORS[1] : COLORS[0] })), unit);
}

// outboxCell is the age of the oldest bundle the agent last reported
// waiting (empty outbox: "empty"), with when it reported.
function outboxCell(o) {
  if (!o) return h("span", { class: "muted" }, "not reported");
  const when = "reported " + fmtTime(o.reported);
  if (!o.depth) return h("span", { class: "ok", title: when }, "empty");
  return h("span", { class: lagClass(o.ageSeconds), title: when }, lag(o.ageSeconds));
}

export async function render() {
  const out = h("div", {}, h("p", { class: "loading" }, "Loading…"));
  mount(h("h1", {}, "Fleet"), out);
  let devs, alerts;
  try {
    [devs, alerts] = await Promise.all([api.get("/v1/devices"), api.get("/v1/alerts", { limit: 200 })]);
  } catch (e) {
    out.replaceChildren(h("p", { class: "empty" }, errorText(e)));
    return;
  }
  const open = {};
  for (const a of alerts.items || []) open[a.device] = (open[a.device] || 0) + 1;
  const items = (devs.items || []).map(d => ({ ...d, alerts: open[d.device] || 0 }));
  const cols = [
    { key: "device", label: "Device", cell: r => h("a", { href: searchHref({ device: r.device }) }, r.device) },
    { key: "status", label: "Status", cell: r => statusBadge(r.status) },
    { key: "keyId", label: "Key", cell: r => short(r.keyId) },
    { key: "epoch", label: "Epoch", num: true },
    { key: "pcrs", label: "PCRs", cell: r => r.pcrs ? badge(r.pcrs, "ok") : badge("none", "warn"), csv: r => r.pcrs || "" },
    { key: "revokedKeys", label: "Revoked keys", num: true },
    { key: "bundles", label: "Bundles", num: true },
    { key: "exports", label: "Exports", num: true },
    { key: "refused", label: "Refused", num: true },
    { key: "lastBundle", label: "Last bundle", cell: r => r.lastBundle ? h("a", { href: searchHref({ bundle: r.lastBundle }) }, short(r.lastBundle)) : "" },
    { key: "lastAcceptedAt", label: "Last accepted", cell: r => fmtTime(r.lastAcceptedAt) },
    { key: "lagSeconds", label: "Delivery lag", cell: r => h("span", { class: lagClass(r.lagSeconds) }, lag(r.lagSeconds)) },
    { key: "outboxAge", label: "Outbox age", cell: r => outboxCell(r.outbox), csv: r => r.outbox ? r.outbox.ageSeconds : "" },
    { key: "outboxDepth", label: "Outbox", num: true, cell: r => r.outbox ? String(r.outbox.depth) : "", csv: r => r.outbox ? r.outbox.depth : "" },
    { key: "alerts", label: "Open alerts", num: true, cell: r => r.alerts ? badge(String(r.alerts), "bad") : "0", csv: r => r.alerts },
    { key: "reads", label: "Reads", cell: r => h("a", { href: "#/access?device=" + encodeURIComponent(r.device) }, "access history"), noCsv: true },
  ];
  const lagged = items.filter(d => d.lagSeconds !== undefined).sort((a, b) => b.lagSeconds - a.lagSeconds);
  const alertCols = [
    { key: "time", label: "Time", cell: r => fmtTime(r.time) },
    { key: "severity", label: "Severity", cell: r => badge(r.severity, r.severity === "alarm" ? "bad" : "warn") },
    { key: "kind", label: "Kind" },
    { key: "device", label: "Device" },
    { key: "bundleDigest", label: "Bundle", cell: r => short(r.bundleDigest) },
    { key: "reasons", label: "Reasons", wrap: true, cell: r => (r.reasons || []).join("; "), csv: r => (r.reasons || []).join("; ") },
  ];
  out.replaceChildren(
    table("fleet-table", "fleet", cols, items, { caption: items.length + " devices", empty: "No device enrolled." }),
    h("h2", {}, "Delivery lag of each device's last bundle"),
    h("div", { class: "card" }, lagChart(lagged)),
    h("h2", {}, "Open alerts"),
    h("p", { class: "hint" }, "Refused bundles and alarms the archive raised, newest first."),
    table("alerts-table", "alerts", alertCols, alerts.items || [], { empty: "No open alert." }));
}
