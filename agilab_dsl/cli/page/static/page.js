// The live page: draws the step graph (layers ranked by the server), moves it with the server's
// event stream (/api/events), shows a step's facts and log tail, and the history's plots and a
// two-run comparison. No framework, no CDN: everything here is served by agilab-run itself.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const NODE_W = 170, NODE_H = 46, GAP_X = 70, GAP_Y = 22, PAD = 16;
const PALETTE = ["#2563eb", "#db2777", "#16a34a", "#ea580c", "#7c3aed", "#0891b2", "#ca8a04", "#475569"];

const page = { steps: {}, order: [], edges: [], colors: {}, selected: null, historyVersion: -1, history: null };
// what the page saw, step by step (a browser test reads it): every state each node was drawn in
window.agilabSeen = {};

function el(name, attrs, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function text(id, value) { document.getElementById(id).textContent = value; }

function seen(step, state) {
  const list = window.agilabSeen[step] || (window.agilabSeen[step] = []);
  if (list[list.length - 1] !== state) list.push(state);
}

// -- the graph --------------------------------------------------------------------------------
function drawGraph() {
  const svg = document.getElementById("graph");
  svg.replaceChildren();
  const defs = el("defs", {}, svg);
  const marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" }, defs);
  el("path", { d: "M0,0 L10,5 L0,10 z", fill: "#94a3b8" }, marker);
  const rows = {};
  const at = {};
  for (const id of page.order) {
    const s = page.steps[id];
    const row = rows[s.rank] = (rows[s.rank] || 0) + 1;
    at[id] = { x: PAD + s.rank * (NODE_W + GAP_X), y: PAD + (row - 1) * (NODE_H + GAP_Y) };
  }
  const width = Math.max(...Object.values(at).map(p => p.x + NODE_W), 200) + PAD;
  const height = Math.max(...Object.values(at).map(p => p.y + NODE_H), 60) + PAD;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.style.height = `${height}px`;
  svg.style.maxWidth = `${width}px`;
  for (const e of page.edges) {
    const a = at[e.from], b = at[e.to];
    if (!a || !b) continue;
    const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x, y2 = b.y + NODE_H / 2, mid = (x1 + x2) / 2;
    el("path", { class: "edge", d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`, "marker-end": "url(#arrow)", "data-from": e.from, "data-to": e.to }, svg);
  }
  for (const id of page.order) {
    const g = el("g", { class: "node", "data-step": id, "data-testid": `node-${id}`, transform: `translate(${at[id].x},${at[id].y})` }, svg);
    el("rect", { width: NODE_W, height: NODE_H }, g);
    el("text", { x: 10, y: 19 }, g).textContent = id.length > 22 ? id.slice(0, 21) + "…" : id;
    el("text", { x: 10, y: 36, class: "state" }, g);
    el("title", {}, g).textContent = id;
    g.addEventListener("click", () => select(id));
    paintNode(id);
  }
  drawLegend();
}

function paintNode(id) {
  const s = page.steps[id];
  const g = document.querySelector(`g.node[data-step="${CSS.escape(id)}"]`);
  if (!s || !g) return;
  g.setAttribute("data-state", s.state);
  g.classList.toggle("selected", page.selected === id);
  g.querySelector("rect").setAttribute("fill", page.colors[s.state] || "#ffffff");
  let label = s.state;
  if (s.total) label += ` · ${s.done || 0}/${s.total}`;
  if (s.state !== "running" && s.seconds != null) label += ` · ${s.seconds.toFixed(2)} s`;
  g.querySelector("text.state").textContent = label;
  seen(id, s.state);
}

function drawLegend() {
  const legend = document.getElementById("legend");
  legend.replaceChildren();
  for (const [state, color] of Object.entries(page.colors)) {
    const item = document.createElement("span");
    item.textContent = state;
    item.style.background = color;
    legend.appendChild(item);
  }
}

// -- the step panel ---------------------------------------------------------------------------
function select(id) {
  const before = page.selected;
  page.selected = id;
  if (before) paintNode(before);
  paintNode(id);
  showStep();
  fetchLog();
}

function showStep() {
  const s = page.steps[page.selected];
  if (!s) return;
  text("step-title", s.id);
  const facts = document.getElementById("step-facts");
  facts.replaceChildren();
  const rows = [
    ["state", s.state],
    ["reasons", (s.reasons || []).join("; ") || "—"],
    ["backend", s.backend || "—"],
    ["duration", s.seconds != null ? `${s.seconds.toFixed(3)} s` : (s.started ? "running…" : "—")],
    ["attempt", s.attempt != null ? String(s.attempt) : "—"],
  ];
  if (s.error) rows.push(["error", s.error]);
  if (s.dashboard) rows.push(["dashboard", s.dashboard]);
  if (s.last_line) rows.push(["last line", s.last_line]);
  for (const [k, v] of rows) {
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = k; dd.textContent = v; dd.dataset.fact = k;
    facts.append(dt, dd);
  }
  const box = document.getElementById("partitions");
  box.hidden = !s.total;
  if (s.total) {
    document.getElementById("partitions-bar").style.width = `${(100 * (s.done || 0)) / s.total}%`;
    text("partitions-text", `${s.done || 0} / ${s.total} partitions${s.failed ? `, ${s.failed} failed` : ""}`);
  }
}

async function fetchLog() {
  const id = page.selected;
  if (!id) return;
  try {
    const reply = await fetch(`/api/log/${encodeURIComponent(id)}?lines=60`);
    if (!reply.ok || page.selected !== id) return;
    const data = await reply.json();
    text("log-path", data.path ? `(${data.path})` : "(none yet)");
    const pre = document.getElementById("log");
    pre.textContent = data.lines.join("\n");
    pre.scrollTop = pre.scrollHeight;
  } catch (err) { /* the server went away: the connection line says so */ }
}

setInterval(() => {
  const s = page.steps[page.selected];
  if (s && s.state === "running") fetchLog();
}, 500);

// -- the live state ---------------------------------------------------------------------------
function takeSnapshot(snap) {
  page.steps = {};
  page.order = [];
  for (const s of snap.steps) { page.steps[s.id] = s; page.order.push(s.id); }
  page.edges = snap.edges;
  text("lab", snap.lab.split("/").slice(-2).join("/"));
  document.getElementById("lab").title = snap.lab;
  showRun(snap.run);
  showLab(snap.lab_status);
  drawGraph();
  if (page.selected && page.steps[page.selected]) select(page.selected);
  if (snap.history_version !== page.historyVersion) loadHistory(snap.history_version);
}

function showRun(run) {
  if (!run || !run.run_id) return;
  const counts = run.counts ? " — " + Object.entries(run.counts).map(([k, n]) => `${n} ${k}`).join(", ") : "";
  const secs = run.seconds != null ? ` in ${Number(run.seconds).toFixed(2)} s` : "";
  text("run", `run ${run.run_id}: ${run.status}${secs}${counts}`);
  document.getElementById("run").dataset.state = run.status;
}

function showLab(lab) {
  const box = document.getElementById("lab-status");
  if (!lab) return;
  box.dataset.state = lab.status;
  if (lab.status === "failed") box.textContent = "definition invalid: " + (lab.diagnostics || []).join(" | ");
  else if (lab.changed && lab.changed.length) box.textContent = "changed: " + lab.changed.join(", ");
  else box.textContent = "";
}

function takeUpdate(update) {
  for (const [id, view] of Object.entries(update.steps || {})) {
    page.steps[id] = view;
    paintNode(id);
    if (id === page.selected) {
      showStep();
      if (view.state !== "running") fetchLog();
    }
  }
  if (update.run) showRun(update.run);
  if (update.lab_status) showLab(update.lab_status);
  if (update.history_version != null && update.history_version !== page.historyVersion) loadHistory(update.history_version);
}

function connect() {
  const source = new EventSource("/api/events");
  const status = document.getElementById("connection");
  source.onopen = () => { status.dataset.state = "open"; status.textContent = "live"; };
  source.onerror = () => { status.dataset.state = "closed"; status.textContent = "disconnected (retrying)"; };
  source.addEventListener("snapshot", m => takeSnapshot(JSON.parse(m.data)));
  source.addEventListener("update", m => takeUpdate(JSON.parse(m.data)));
  source.onmessage = m => { window.agilabLastEvent = JSON.parse(m.data); };
}

// -- history ----------------------------------------------------------------------------------
async function loadHistory(version) {
  page.historyVersion = version;
  const reply = await fetch("/api/history");
  if (!reply.ok) return;
  page.history = await reply.json();
  drawHistory();
}

function plot(svg, series, runs) {
  // series: [{name, color, values: [number|null per run]}]
  svg.replaceChildren();
  const W = 360, H = 160, L = 42, R = 10, T = 10, B = 22;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const all = series.flatMap(s => s.values).filter(v => v != null);
  const top = all.length ? Math.max(...all) : 1, bottom = all.length ? Math.min(0, ...all) : 0;
  const span = top - bottom || 1;
  const x = i => L + (runs.length > 1 ? (i * (W - L - R)) / (runs.length - 1) : (W - L - R) / 2);
  const y = v => H - B - ((v - bottom) * (H - T - B)) / span;
  el("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }, svg);
  el("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }, svg);
  el("text", { x: 2, y: T + 8 }, svg).textContent = top.toPrecision(3);
  el("text", { x: 2, y: H - B }, svg).textContent = bottom.toPrecision(3);
  el("text", { x: L, y: H - 6 }, svg).textContent = `${runs.length} run${runs.length === 1 ? "" : "s"}`;
  for (const s of series) {
    const points = s.values.map((v, i) => (v == null ? null : [x(i), y(v)])).filter(Boolean);
    if (points.length > 1) el("polyline", { points: points.map(p => p.join(",")).join(" "), stroke: s.color, "data-series": s.name }, svg);
    s.values.forEach((v, i) => {
      if (v == null) return;
      const dot = el("circle", { cx: x(i), cy: y(v), r: 3, fill: s.color, "data-series": s.name, "data-run": runs[i].run_id }, svg);
      el("title", {}, dot).textContent = `${s.name}: ${v} (${runs[i].run_id})`;
    });
  }
}

function legend(box, series) {
  box.replaceChildren();
  for (const s of series) {
    const item = document.createElement("span");
    item.textContent = `■ ${s.name}`;
    item.style.color = s.color;
    box.appendChild(item);
  }
}

function drawHistory() {
  const h = page.history;
  if (!h) return;
  const durations = h.steps.map((id, n) => ({
    name: id, color: PALETTE[n % PALETTE.length],
    values: h.runs.map(r => (r.steps[id] && r.steps[id].status === "ran" ? r.steps[id].duration : null)),
  }));
  plot(document.getElementById("plot-durations"), durations, h.runs);
  legend(document.getElementById("legend-durations"), durations);
  const box = document.getElementById("metric-plots");
  box.replaceChildren();
  h.metrics.forEach((name, n) => {
    const [step, ...rest] = name.split(".");
    const metric = rest.join(".");
    const figure = document.createElement("figure");
    const caption = document.createElement("figcaption");
    caption.textContent = `${metric} (${step})`;
    const svg = el("svg", { class: "plot plot-metric", "data-metric": name });
    figure.append(caption, svg);
    box.appendChild(figure);
    const values = h.runs.map(r => (r.steps[step] && r.steps[step].metrics[metric] != null ? r.steps[step].metrics[metric] : null));
    plot(svg, [{ name, color: PALETTE[n % PALETTE.length], values }], h.runs);
  });
  fillRunChoices();
}

function fillRunChoices() {
  const runs = page.history.runs.map(r => r.run_id);
  const a = document.getElementById("run-a"), b = document.getElementById("run-b");
  const keep = [a.value, b.value];
  for (const select of [a, b]) {
    select.replaceChildren(...runs.slice().reverse().map(id => new Option(id, id)));
  }
  a.value = runs.includes(keep[0]) && keep[0] !== runs[runs.length - 1] ? keep[0] : runs[runs.length - 2] || runs[0] || "";
  b.value = runs[runs.length - 1] || "";
  compareRuns();
}

async function compareRuns() {
  const a = document.getElementById("run-a").value, b = document.getElementById("run-b").value;
  const table = document.getElementById("compare");
  table.replaceChildren();
  if (!a || !b) return;
  const reply = await fetch(`/api/runs/${encodeURIComponent(a)}/${encodeURIComponent(b)}`);
  if (!reply.ok) return;
  const data = await reply.json();
  const head = table.insertRow();
  for (const h of ["step", `A ${data.a}`, `B ${data.b}`, "what differs"]) {
    const th = document.createElement("th"); th.textContent = h; head.appendChild(th);
  }
  const cell = side => {
    const parts = [side.status || "—"];
    if (side.duration != null) parts.push(`${Number(side.duration).toFixed(3)} s`);
    for (const [k, v] of Object.entries(side.metrics || {})) parts.push(`${k}=${Number(v).toPrecision(4)}`);
    return parts.join(" · ");
  };
  for (const row of data.steps) {
    const tr = table.insertRow();
    tr.dataset.step = row.step_id;
    const differs = Object.entries(row.differences).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join("; ") : v}`);
    for (const [value, cls] of [[row.step_id, ""], [cell(row.a), ""], [cell(row.b), ""], [differs.join(" | ") || "—", differs.length ? "differs" : ""]]) {
      const td = tr.insertCell(); td.textContent = value; if (cls) td.className = cls;
    }
  }
}

document.getElementById("run-a").addEventListener("change", compareRuns);
document.getElementById("run-b").addEventListener("change", compareRuns);

async function start() {
  const reply = await fetch("/api/graph");
  const graph = await reply.json();
  page.colors = graph.colors;
  connect();
}

start();
