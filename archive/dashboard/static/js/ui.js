// Small DOM helpers: every text from the archive goes in as text, never as
// markup.

// h builds an element: h("a", {href: "#"}, "text", child, ...).
export function h(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (v === true) e.setAttribute(k, "");
    else e.setAttribute(k, String(v));
  }
  append(e, children);
  return e;
}

function append(e, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(e, c);
    else if (c instanceof Node) e.appendChild(c);
    else e.appendChild(document.createTextNode(String(c)));
  }
}

// mount replaces the children of the main area.
export function mount(...children) {
  const m = document.getElementById("main");
  m.replaceChildren();
  append(m, children);
}

// fmtTime shows an RFC 3339 time as "YYYY-MM-DD HH:MM:SS" UTC.
export function fmtTime(s) {
  if (!s) return "";
  return s.replace("T", " ").replace(/\.\d+Z$/, "Z").replace("Z", " UTC");
}

// short shortens a digest for a table cell; the full value is the title.
export function short(d) {
  if (!d) return "";
  const s = String(d);
  const t = s.startsWith("sha256:") ? s.slice(7, 19) + "…" : s;
  return h("span", { class: "mono", title: s }, t);
}

export function badge(text, cls) { return h("span", { class: "badge " + (cls || "") }, text); }

export function statusBadge(st) {
  return badge(st || "?", st === "accepted" || st === "ok" || st === "approved" ? "ok" : st === "refused" || st === "revoked" || st === "forbidden" ? "bad" : "warn");
}

// csvCell quotes a value for CSV (RFC 4180) and defuses spreadsheet
// formulas.
function csvCell(v) {
  let s = v === undefined || v === null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v);
  if (/^[=+\-@\t\r]/.test(s)) s = "'" + s;
  return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
}

// downloadCSV saves rows (objects) with the columns as a CSV file.
export function downloadCSV(name, columns, rows) {
  columns = columns.filter(c => !c.noCsv);
  const lines = [columns.map(c => csvCell(c.label)).join(",")];
  for (const r of rows) lines.push(columns.map(c => csvCell(c.csv ? c.csv(r) : r[c.key])).join(","));
  const blob = new Blob([lines.join("\r\n") + "\r\n"], { type: "text/csv" });
  const a = h("a", { href: URL.createObjectURL(blob), download: name });
  document.body.appendChild(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

// table renders rows with columns [{key, label, cell(row), csv(row), num,
// wrap, noCsv}]
// and a CSV button that saves what the table shows.
export function table(id, name, columns, rows, opts) {
  opts = opts || {};
  const head = h("tr", {}, columns.map(c => h("th", { class: c.num ? "num" : "" }, c.label)));
  const tbody = h("tbody");
  const fill = () => {
    tbody.replaceChildren();
    for (const r of rows) {
      tbody.appendChild(h("tr", { class: r._new ? "new" : "" }, columns.map(c => h("td", { class: c.num ? "num" : c.wrap ? "wrap" : "" }, c.cell ? c.cell(r) : (r[c.key] ?? "")))));
    }
  };
  fill();
  const csv = h("button", { type: "button", class: "csv", "data-table": id, onclick: () => downloadCSV(name + ".csv", columns, rows) }, "CSV");
  const wrap = h("div", { class: "tablewrap", id },
    h("div", { class: "tablebar" }, h("span", { class: "hint" }, opts.caption || (rows.length + " rows")), h("span", { class: "actions" }, opts.extra || null, csv)),
    rows.length ? h("table", {}, h("thead", {}, head), tbody) : h("p", { class: "empty" }, opts.empty || "Nothing to show."));
  return wrap;
}

// notice shows a message above the page (error true: in red); "" hides it.
export function notice(text, error) {
  const n = document.getElementById("notice");
  n.textContent = text || "";
  n.className = error ? "error" : "";
  n.hidden = !text;
}

// errorText is what a failed call shows.
export function errorText(e) {
  if (e && e.status === 403) return "Your account's roles do not allow this view.";
  if (e && e.status === 404) return "Not found.";
  return "The archive answered: " + (e && e.message ? e.message : String(e));
}

// pager shows Previous/Next over an API cursor kept in the route.
export function pager(hasPrev, next, onPrev, onNext) {
  return h("span", { class: "pager" },
    h("button", { type: "button", class: "prev", disabled: !hasPrev, onclick: onPrev }, "← Previous"),
    h("button", { type: "button", class: "next", disabled: !next, onclick: onNext }, "Next →"));
}
