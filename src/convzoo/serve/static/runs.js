// The Runs view: the run folders and experiment outputs under --runs, one run's curves
// (loss and accuracy against epoch or step) drawn as SVG and grown live while it trains,
// several runs overlaid, and an experiment's verdicts, table and curves. Also the pieces
// the Inside and Train views share: which of these views the hash names, the page's token
// for state-changing requests, and the chart.
import { el, int } from "./format.js";

const $ = (id) => document.getElementById(id);
export const VIEWS = ["runs", "inside", "train"];
const COLORS = ["#2b6cb0", "#c05621", "#2f855a", "#9b2c2c", "#6b46c1", "#b7791f", "#285e61", "#97266d"];
const POLL_MS = 1000; // metrics.jsonl is read again every second: the chart is at most ~1 s behind

// ---------------------------------------------------------------------------------------
// which view: the hash's `view` key (build.js owns the others); our views show through a
// class on <body>, so the order in which the modules react to a hash change does not matter
export function currentView() {
  return new URLSearchParams(location.hash.slice(1)).get("view") || "build";
}
const listeners = [];
export function onView(fn) {
  listeners.push(fn);
  const v = currentView(); // a module that loads after the first showView() still hears it
  if (VIEWS.includes(v)) queueMicrotask(() => fn(v));
}
function showView() {
  const v = currentView();
  const ours = VIEWS.includes(v) ? v : "";
  document.body.dataset.zview = ours;
  for (const name of VIEWS) {
    $(`${name}-view`).hidden = name !== ours;
    $(`tab-${name}`)?.classList.toggle("on", name === ours);
  }
  for (const fn of listeners) fn(ours);
}

// ---------------------------------------------------------------------------------------
let tokenPromise = null;
export function token() {
  if (!tokenPromise) tokenPromise = fetch("/api/session").then((r) => r.json()).then((d) => d.token);
  return tokenPromise;
}

export async function getJSON(path) {
  const res = await fetch(path);
  const data = await res.json();
  if (!res.ok) throw Object.assign(new Error(data.error || res.statusText), { data, status: res.status });
  return data;
}

// a state-changing request: JSON (or raw bytes) with the page's token
export async function send(path, body, { raw = false } = {}) {
  const headers = { "X-Convzoo-Token": await token() };
  if (!raw) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method: "POST", headers, body: raw ? body : JSON.stringify(body || {}) });
  const data = await res.json();
  if (!res.ok) throw Object.assign(new Error(data.error || res.statusText), { data, status: res.status });
  return data;
}

export const q = (params) => new URLSearchParams(params).toString();
export const pct = (x) => (x === null || x === undefined ? "" : `${Number(x).toFixed(2)}%`);

// ---------------------------------------------------------------------------------------
// the chart: series of [x, y] points, drawn as SVG polylines with dots at epoch ends
const NS = "http://www.w3.org/2000/svg";
function svgEl(tag, attrs = {}, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function niceTicks(lo, hi, n = 5) {
  if (!(hi > lo)) { hi = lo + 1; }
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toFixed(10)));
  return ticks;
}

// records of one run -> the series the chart draws for the chosen x axis and metric
export function seriesOf(records, { x = "epoch", metric = "accuracy" } = {}) {
  const acc = metric !== "loss";
  const y = (v) => (v === null || v === undefined ? null : metric === "error" ? 100 - v : v);
  const epochs = records.filter((r) => r.kind === "epoch");
  const steps = records.filter((r) => r.kind === "step");
  const pick = (recs, key, xKey) => recs.map((r) => [r[xKey], y(r[key])]).filter((p) => p[0] !== undefined && p[1] !== null && p[1] !== undefined);
  const train = x === "step" && steps.length
    ? pick(steps, acc ? "top1" : "loss", "step")
    : pick(epochs, acc ? "train_top1" : "train_loss", x);
  const test = pick(epochs, acc ? "test_top1" : "test_loss", x);
  return { train, test };
}

export function drawChart(box, runs, { x = "epoch", metric = "accuracy", width = 640, height = 300 } = {}) {
  const W = width, H = height, L = 52, R = 12, T = 12, B = 38;
  const svg = svgEl("svg", { width: W, height: H, class: "chart", viewBox: `0 0 ${W} ${H}` });
  const lines = [];
  runs.forEach((run, i) => {
    const color = run.color || COLORS[i % COLORS.length];
    const s = seriesOf(run.records, { x, metric });
    lines.push({ label: `${run.label} test`, color, dash: "", points: s.test, dots: true, kind: "test", run: run.label });
    if (!run.testOnly) lines.push({ label: `${run.label} train`, color, dash: "5 4", points: s.train, dots: false, kind: "train", run: run.label });
  });
  const all = lines.flatMap((l) => l.points);
  const yName = metric === "loss" ? "loss" : metric === "error" ? "error (%) = 100 - accuracy" : "top-1 accuracy (%)";
  if (!all.length) {
    svg.append(svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" }, "no records yet"));
    svg.dataset.points = "0";
    box.replaceChildren(svg);
    return svg;
  }
  let x0 = Math.min(...all.map((p) => p[0])), x1 = Math.max(...all.map((p) => p[0]));
  let y0 = Math.min(...all.map((p) => p[1])), y1 = Math.max(...all.map((p) => p[1]));
  if (x === "epoch") x0 = Math.min(x0, 0);
  if (metric !== "loss") { y0 = Math.max(0, Math.floor(y0 / 5) * 5); y1 = Math.min(100, Math.ceil(y1 / 5) * 5); }
  if (y1 === y0) { y0 -= 1; y1 += 1; }
  if (x1 === x0) x1 = x0 + 1;
  const sx = (v) => L + ((v - x0) / (x1 - x0)) * (W - L - R);
  const sy = (v) => H - B - ((v - y0) / (y1 - y0)) * (H - T - B);
  svg.append(svgEl("rect", { x: L, y: T, width: W - L - R, height: H - T - B, class: "plot" }));
  for (const t of niceTicks(y0, y1)) {
    svg.append(svgEl("line", { x1: L, x2: W - R, y1: sy(t), y2: sy(t), class: "grid" }));
    svg.append(svgEl("text", { x: L - 6, y: sy(t) + 4, "text-anchor": "end", class: "tick" }, String(t)));
  }
  for (const t of niceTicks(x0, x1, 6)) {
    if (!Number.isInteger(t)) continue; // epochs and steps are whole numbers
    svg.append(svgEl("line", { x1: sx(t), x2: sx(t), y1: H - B, y2: H - B + 4, class: "axis" }));
    svg.append(svgEl("text", { x: sx(t), y: H - B + 16, "text-anchor": "middle", class: "tick" }, int(t)));
  }
  svg.append(svgEl("text", { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle", class: "label" }, x));
  svg.append(svgEl("text", { x: 12, y: (T + H - B) / 2, transform: `rotate(-90 12 ${(T + H - B) / 2})`, "text-anchor": "middle", class: "label" }, yName));
  for (const l of lines) {
    if (!l.points.length) continue;
    const g = svgEl("g", { "data-series": l.label, "data-kind": l.kind, "data-n": l.points.length });
    g.append(svgEl("polyline", { points: l.points.map((p) => `${sx(p[0])},${sy(p[1])}`).join(" "), fill: "none", stroke: l.color, "stroke-width": 2, "stroke-dasharray": l.dash }));
    if (l.dots) for (const p of l.points) {
      const c = svgEl("circle", { cx: sx(p[0]), cy: sy(p[1]), r: 3, fill: l.color });
      c.append(svgEl("title", {}, `${l.label}: ${x} ${int(p[0])}, ${metric} ${p[1].toFixed(metric === "loss" ? 4 : 2)}`));
      g.append(c);
    }
    svg.append(g);
  }
  svg.dataset.points = String(all.length);
  const legend = el("div", { class: "legend" });
  const seen = new Set();
  for (const l of lines) {
    if (seen.has(l.run)) continue;
    seen.add(l.run);
    const sw = el("i");
    sw.style.background = l.color; // CSSOM, not a style attribute: the page's CSP allows no inline styles
    legend.append(el("span", {}, sw, l.run));
  }
  legend.append(el("span", { class: "key" }, "solid: test, dashed: train"));
  box.replaceChildren(svg, legend);
  return svg;
}

// ---------------------------------------------------------------------------------------
// one run's records, kept up to date by polling /api/run with the offset it returned
export class RunFollower {
  constructor(path, onUpdate) {
    this.path = path; this.records = []; this.offset = 0; this.info = null; this.onUpdate = onUpdate; this.timer = null;
  }
  async poll() {
    const d = await getJSON(`/api/run?${q({ path: this.path, offset: this.offset })}`);
    if (d.metrics.offset < this.offset) this.records = []; // the file was replaced
    this.records.push(...d.metrics.records);
    this.offset = d.metrics.offset;
    this.info = d;
    return d;
  }
  start() {
    const tick = async () => {
      try { await this.poll(); this.onUpdate(this); } catch (err) { this.onUpdate(this, err); }
      const live = this.info && this.info.status === "running";
      this.timer = setTimeout(tick, live || this.keepAlive ? POLL_MS : POLL_MS * 3);
    };
    tick();
    return this;
  }
  stop() { clearTimeout(this.timer); this.timer = null; }
}

// ---------------------------------------------------------------------------------------
const state = { open: null, checked: new Set(), x: "epoch", metric: "accuracy", experiment: null };
const followers = new Map();
let listTimer = null;

function statusBadge(s) { return el("span", { class: `status ${s}` }, s); }

async function refreshList() {
  let d;
  try { d = await getJSON("/api/runs"); } catch (err) { $("runs-error").textContent = err.message; $("runs-error").hidden = false; return; }
  $("runs-error").hidden = true;
  $("runs-root").textContent = d.root;
  const rows = d.runs.map((r) => {
    const box = el("input", { type: "checkbox", title: "overlay on the chart" });
    box.checked = state.checked.has(r.path);
    box.addEventListener("change", () => { if (box.checked) state.checked.add(r.path); else state.checked.delete(r.path); syncFollowers(); });
    const link = el("a", { href: "#view=runs", class: "run-link" }, r.path);
    link.addEventListener("click", (e) => { e.preventDefault(); openRun(r.path); });
    const tr = el("tr", { "data-run": r.path, class: r.path === state.open ? "open" : "" },
      el("td", {}, box), el("td", {}, link), el("td", {}, r.model || ""), el("td", {}, r.data || ""),
      el("td", { class: "n" }, `${r.epochs_done ?? ""}/${r.epochs ?? ""}`), el("td", { class: "n" }, pct(r.test_top1)),
      el("td", { class: "n" }, pct(r.best_test_top1)), el("td", { class: "n" }, r.images_per_second ? int(r.images_per_second) : ""),
      el("td", {}, statusBadge(r.status)));
    return tr;
  });
  $("runs-table").tBodies[0].replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 9, class: "empty" }, "no run folders here yet: train one from the Train view or with convzoo train --out"))]));
  const exps = d.experiments.map((e) => {
    const link = el("a", { href: "#view=runs", class: "exp-link" }, e.path);
    link.addEventListener("click", (ev) => { ev.preventDefault(); openExperiment(e.path); });
    return el("tr", { "data-experiment": e.path }, el("td", {}, link), el("td", {}, e.experiment || ""), el("td", {}, e.scale || ""),
      el("td", { class: "n" }, String(e.runs.length)), el("td", { class: "verdict" }, (e.verdicts || [])[0] || ""));
  });
  $("experiments").hidden = !exps.length;
  $("experiments-table").tBodies[0].replaceChildren(...exps);
}

function syncFollowers() {
  const wanted = new Set(state.checked);
  if (state.open) wanted.add(state.open);
  for (const [p, f] of followers) if (!wanted.has(p)) { f.stop(); followers.delete(p); }
  for (const p of wanted) if (!followers.has(p)) followers.set(p, new RunFollower(p, redraw).start());
  redraw();
}

function redraw() {
  const order = [...followers.keys()].sort((a, b) => (a === state.open ? -1 : b === state.open ? 1 : a.localeCompare(b)));
  const runs = order.map((p) => ({ label: p, records: followers.get(p).records }));
  $("runs-chart-box").hidden = !runs.length && !state.experiment; // the x / y controls serve both charts
  $("runs-chart").hidden = !runs.length;
  if (runs.length) drawChart($("runs-chart"), runs, { x: state.x, metric: state.metric });
  const f = state.open && followers.get(state.open);
  if (f && f.info) showDetail(f.info);
}

function showDetail(d) {
  const c = d.config || {};
  const s = d.summary || {};
  const facts = [
    ["status", statusBadge(d.status)], ["model", d.model], ["data", d.data], ["epochs", `${d.epochs_done ?? 0} of ${d.epochs ?? "?"}`],
    ["steps", int(d.steps)], ["test top-1", pct(d.test_top1)], ["best test top-1", pct(d.best_test_top1)],
    ["images/s", d.images_per_second ? int(d.images_per_second) : ""], ["batch size", c.batch_size], ["lr", c.lr],
    ["optimizer", c.optimizer], ["schedule", c.schedule], ["amp", c.amp || "off"], ["wall", s.wall_seconds ? `${s.wall_seconds.toFixed(1)} s` : ""],
    ["checkpoints", (d.checkpoints || []).join(", ")],
  ];
  $("run-title").textContent = d.path;
  $("run-facts").replaceChildren(...facts.filter(([, v]) => v !== undefined && v !== null && v !== "").map(([k, v]) => el("div", { class: "fact" }, el("span", { class: "k" }, k), el("span", { class: "v", "data-fact": k }, v))));
  $("run-detail").hidden = false;
}

function openRun(path) {
  state.open = path;
  state.experiment = null;
  $("experiment-detail").hidden = true;
  document.querySelectorAll("#runs-table tr[data-run]").forEach((tr) => tr.classList.toggle("open", tr.dataset.run === path));
  syncFollowers();
}

async function openExperiment(path) {
  let d;
  try { d = await getJSON(`/api/experiment?${q({ path })}`); } catch (err) { $("runs-error").textContent = err.message; $("runs-error").hidden = false; return; }
  state.experiment = d;
  $("experiment-title").textContent = `${d.title || d.experiment || d.path} (${d.scale || ""})`;
  $("experiment-claim").textContent = d.claim || "";
  $("experiment-verdicts").replaceChildren(...(d.verdicts || []).map((v) => el("li", {}, v)));
  const rows = d.rows || [];
  const keys = ["run", "model", "role", "depth", "params", "epochs", "test_error", "train_error", "test_top1", "paper_error", "images_per_second"]
    .filter((k) => rows.some((r) => r[k] !== undefined && r[k] !== null));
  const fmt = (v) => (typeof v === "number" ? (Number.isInteger(v) ? int(v) : v.toFixed(2)) : v ?? "");
  $("experiment-table").replaceChildren(el("thead", {}, el("tr", {}, ...keys.map((k) => el("th", {}, k)))),
    el("tbody", {}, ...rows.map((r) => el("tr", {}, ...keys.map((k) => el("td", { class: typeof r[k] === "number" ? "n" : "" }, fmt(r[k])))))));
  drawExperimentChart();
  $("experiment-detail").hidden = false;
  redraw();
}

function drawExperimentChart() {
  const d = state.experiment;
  if (!d) return;
  const names = new Map(d.runs.filter((r) => r.path).map((r) => [r.path, r.name]));
  const runs = Object.entries(d.curves).map(([p, recs]) => ({ label: names.get(p) || p, records: recs }));
  drawChart($("experiment-chart"), runs, { x: "epoch", metric: state.metric === "loss" ? "loss" : state.metric });
}

function init() {
  $("runs-x").addEventListener("change", (e) => { state.x = e.target.value; redraw(); });
  $("runs-metric").addEventListener("change", (e) => { state.metric = e.target.value; redraw(); drawExperimentChart(); });
  onView((v) => {
    clearInterval(listTimer);
    if (v === "runs") { refreshList(); listTimer = setInterval(refreshList, 3000); }
  });
  window.addEventListener("hashchange", showView);
  showView();
}

init();
