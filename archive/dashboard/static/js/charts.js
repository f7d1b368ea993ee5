// SVG charts drawn here, no library: stacked bars per day and horizontal
// bars of totals. Colors are SVG presentation attributes (the page's
// Content-Security-Policy allows no inline style).

import { h } from "./ui.js";

const NS = "http://www.w3.org/2000/svg";
export const COLORS = ["#1a7f37", "#cf222e", "#1f6feb", "#9a6700", "#8250df", "#0598bc", "#bf3989", "#6e7781"];

function s(tag, attrs, ...children) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// niceMax is the top of an axis of 4 steps, each step 1, 2 or 5 times a
// power of ten.
function niceMax(v) {
  const raw = Math.max(1, v / 4);
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return 4 * m * p;
  return 40 * p;
}

// fillDays gives every day of [from, to] (YYYY-MM-DD) its entry, empty
// days with no counts (the API leaves them out).
export function fillDays(days, from, to) {
  const by = new Map(days.map(d => [d.day, d]));
  const out = [];
  for (let t = Date.parse(from + "T00:00:00Z"); t <= Date.parse(to + "T00:00:00Z") && out.length < 400; t += 86400e3) {
    const day = new Date(t).toISOString().slice(0, 10);
    out.push(by.get(day) || { day, counts: {} });
  }
  return out;
}

// legend shows the series names beside their colors.
export function legend(keys, offset) {
  return h("div", { class: "legend" }, keys.map((k, i) => h("span", { title: k }, h("i", { class: "sw" + ((i + (offset || 0)) % COLORS.length) }), k.length > 60 ? k.slice(0, 59) + "…" : k)));
}

// stackedDays draws days [{day, counts: {key: n}}] as stacked bars, keys in
// the given order (the first colors go to the first keys). title is the
// chart's accessible name.
export function stackedDays(title, days, keys, offset) {
  const W = 640, H = 230, L = 44, B = 34, T = 10, R = 8;
  const pw = W - L - R, ph = H - T - B;
  const totals = days.map(d => keys.reduce((a, k) => a + (d.counts[k] || 0), 0));
  const max = niceMax(Math.max(1, ...totals));
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
  svg.appendChild(s("title", {}, title));
  for (let i = 0; i <= 4; i++) {
    const y = T + ph - (ph * i) / 4;
    svg.appendChild(s("line", { class: "axis", x1: L, x2: W - R, y1: y, y2: y }));
    svg.appendChild(s("text", { x: L - 6, y: y + 4, "text-anchor": "end" }, Math.round((max * i) / 4)));
  }
  const n = Math.max(days.length, 1);
  const bw = Math.max(2, (pw / n) * 0.75);
  days.forEach((d, i) => {
    const x = L + (pw / n) * i + (pw / n - bw) / 2;
    let y = T + ph;
    keys.forEach((k, j) => {
      const v = d.counts[k] || 0;
      if (!v) return;
      const bh = (ph * v) / max;
      y -= bh;
      svg.appendChild(s("rect", { x, y, width: bw, height: bh, fill: COLORS[(j + (offset || 0)) % COLORS.length] },
        s("title", {}, `${d.day} ${k}: ${v}`)));
    });
    const every = Math.ceil(n / 8);
    if (i % every === 0) svg.appendChild(s("text", { x: x + bw / 2, y: H - B + 16, "text-anchor": "middle" }, d.day.slice(5)));
  });
  if (!days.length) svg.appendChild(s("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no entries in this range"));
  return svg;
}

// bars draws [{label, value, cls}] as horizontal bars, largest first,
// with the value at the end; unit is appended to the values.
export function bars(title, items, unit) {
  const rows = items.slice(0, 20);
  const W = 640, rowH = 22, L = 190, R = 70, H = Math.max(40, rows.length * rowH + 10);
  const max = Math.max(1e-9, ...rows.map(r => r.value));
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
  svg.appendChild(s("title", {}, title));
  rows.forEach((r, i) => {
    const y = 5 + i * rowH;
    const w = ((W - L - R) * r.value) / max;
    const label = r.label.length > 28 ? r.label.slice(0, 27) + "…" : r.label;
    svg.appendChild(s("text", { x: L - 6, y: y + 14, "text-anchor": "end" }, label));
    svg.appendChild(s("rect", { x: L, y: y + 3, width: Math.max(1, w), height: rowH - 8, fill: r.color || COLORS[2] },
      s("title", {}, `${r.label}: ${r.value}${unit || ""}`)));
    svg.appendChild(s("text", { x: L + w + 6, y: y + 14 }, fmtNum(r.value) + (unit || "")));
  });
  if (!rows.length) svg.appendChild(s("text", { x: W / 2, y: 25, "text-anchor": "middle" }, "nothing to show"));
  return svg;
}

function fmtNum(v) {
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}
