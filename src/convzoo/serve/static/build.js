// The Build view: notation or zoo model in, layer table, totals and a block diagram out;
// also the page's state (the URL hash) and the switch between Build, Paper and Compare.
//
// The analysis is asked for at batch 1 (/api/analyze with batch_size 1): parameters, MACs,
// the layer table and the diagram do not depend on the batch. The batch size only scales
// the training memory, here, with the formula of Report.training_memory(batch, optimizer):
// weights + buffers + gradients + optimizer state + batch x (input + saved activations).
import { api, bytes, el, int, shape } from "./format.js";
import { showPaper } from "./paper.js";
import { PRESETS, redrawLayers, showCompare } from "./compare.js";

const $ = (id) => document.getElementById(id);
const state = { view: "build", source: "", input: "1x32x32", batch: "1", dtype: "float32", optimizer: "sgd_momentum", hl: "", table: "lenet",
  a: "alexnet_paper", b: "alexnet", ia: "", ib: "", preset: "alexnet", cdtype: "float32" };
const MINE = ["build", "paper", "compare"]; // runs.js shows the other views
const MAX_BATCH = 65536;
const OPT_NAMES = { sgd: "SGD", sgd_momentum: "SGD with momentum", adam: "Adam" };
let timer = null;
// a layer the forward pass never called (GoogLeNet's auxiliary heads in eval) has no shape
const outShape = (l) => (l.output_shape ? shape(l.output_shape.slice(1)) : "not run");
let seq = 0;

function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  for (const k of Object.keys(state)) if (p.has(k)) state[k] = p.get(k);
}

function writeHash() {
  history.replaceState(null, "", "#" + new URLSearchParams(state).toString());
}

const notationOf = {}; // zoo name -> its canonical notation (null: none), as /api/notation said

function syncControls() {
  $("source").value = state.source;
  $("input").value = state.input;
  $("batch").value = state.batch;
  $("dtype").value = state.dtype;
  $("optimizer").value = state.optimizer;
  $("paper-table").value = state.table;
  const picked = [...$("picker").options].find((o) => o.value && (o.value === state.source || notationOf[o.value] === state.source));
  $("picker").value = picked ? picked.value : "";
  $("compare-a").value = state.a;
  $("compare-b").value = state.b;
  $("compare-ia").value = state.ia;
  $("compare-ib").value = state.ib;
  $("compare-preset").value = state.preset in PRESETS ? state.preset : "";
  $("compare-dtype").value = state.cdtype;
}

function card(k, v, d = "", value = null) {
  const attrs = { class: "card", "data-total": k };
  if (value !== null && value !== undefined) attrs["data-value"] = String(value);
  return el("div", attrs, el("div", { class: "k" }, k), el("div", { class: "v" }, v), el("div", { class: "d" }, d));
}

function batchSize() {
  const b = Number(state.batch);
  return Number.isInteger(b) && b >= 1 && b <= MAX_BATCH ? b : null;
}

// Report.training_memory(batch, optimizer) of a batch-1 report: the activations and the
// input scale with the batch, weights, buffers, gradients and optimizer state do not
export function trainingBytes(m, optimizer, batch) {
  if (m.saved_activation_bytes === null) return null;
  const base = m.param_bytes + m.buffer_bytes + m.gradient_bytes + m.optimizer_state_bytes[optimizer];
  return base + Math.round((m.input_bytes + m.saved_activation_bytes) * batch);
}

function showTotals(r) {
  const m = r.memory;
  const opt = state.optimizer;
  const b = batchSize();
  const train = b === null ? null : trainingBytes(m, opt, b);
  const detail = m.saved_activation_bytes === null ? m.training_note
    : b === null ? `batch must be an integer from 1 to ${int(MAX_BATCH)}`
    : `weights ${bytes(m.param_bytes + m.buffer_bytes)} + gradients ${bytes(m.gradient_bytes)} + optimizer ${bytes(m.optimizer_state_bytes[opt])} + ` +
      `saved activations ${bytes(m.saved_activation_bytes * b)} + input ${bytes(m.input_bytes * b)} (batch ${int(b)})`;
  $("totals").replaceChildren(
    card("parameters", int(r.total_params), `${int(r.trainable_params)} trainable`, r.total_params),
    card("MACs", int(r.macs), `FLOPs ${int(r.flops)}, per image`, r.macs),
    card("parameter memory", bytes(m.param_bytes), "", m.param_bytes),
    card("peak inference memory", bytes(m.peak_inference_bytes), "one image", m.peak_inference_bytes),
    card(`training memory (${OPT_NAMES[opt]})`, train === null ? "-" : bytes(train), detail, train),
  );
}

function highlight(name, on) {
  document.querySelectorAll(`[data-layer="${CSS.escape(name)}"]`).forEach((e) => e.classList.toggle("hl", on));
}

function linked(node, name) {
  node.setAttribute("data-layer", name);
  node.addEventListener("mouseenter", () => highlight(name, true));
  node.addEventListener("mouseleave", () => highlight(name, false));
  return node;
}

function showTable(leaves) {
  const body = $("layers").tBodies[0];
  body.replaceChildren(...leaves.map((l) => linked(el("tr", {},
    el("td", {}, l.name), el("td", {}, l.type), el("td", {}, outShape(l)),
    el("td", { class: "n" }, int(l.params)), el("td", { class: "n" }, int(l.macs)),
    el("td", { class: "n" }, l.saved_bytes === null || l.saved_bytes === undefined ? "-" : bytes(l.saved_bytes))), l.name)));
}

// Leaves grouped under their top-level block; a block with several leaves (an inception,
// residual or dense block, a stage) is drawn as a frame around them.
function showDiagram(leaves) {
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  const groups = [];
  for (const l of leaves) {
    const parts = l.name.split(".");
    const key = parts.slice(0, Math.min(3, parts.length - 1)).join(".") || parts[0];
    if (!groups.length || groups[groups.length - 1].key !== key) groups.push({ key, leaves: [] });
    groups[groups.length - 1].leaves.push(l);
  }
  let y = 4;
  const W = 250;
  const mk = (tag, attrs) => { const e = document.createElementNS(NS, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); return e; };
  for (const g of groups) {
    const framed = g.leaves.length > 1;
    const top = y;
    if (framed) { y += 16; }
    for (const l of g.leaves) {
      const r = linked(mk("rect", { x: framed ? 12 : 4, y, width: framed ? W - 20 : W - 8, height: 18, rx: 3, class: "leaf" }), l.name);
      const t = mk("text", { x: framed ? 18 : 10, y: y + 13 });
      t.textContent = `${l.type} ${outShape(l)}`;
      svg.append(r, t);
      y += 22;
    }
    if (framed) {
      const frame = mk("rect", { x: 2, y: top, width: W - 4, height: y - top + 2, rx: 5, class: "blk" });
      const label = mk("text", { x: 8, y: top + 12 });
      label.textContent = g.key;
      svg.insertBefore(frame, svg.firstChild);
      svg.append(label);
      y += 8;
    }
  }
  svg.setAttribute("width", W);
  svg.setAttribute("height", y + 4);
  $("diagram").replaceChildren(svg);
}

function showError(err) {
  const box = $("error");
  const d = err.data || {};
  if (d.position !== undefined && d.position !== null && d.text) {
    box.textContent = `${d.message}\n${d.text.replace(/\s/g, " ")}\n${" ".repeat(d.position)}^`;
  } else {
    box.textContent = err.message;
  }
  box.hidden = false;
  $("result").classList.add("stale");
}

function showView() {
  const v = MINE.includes(state.view) ? state.view : "build"; // another view: runs.css hides ours
  for (const name of MINE) {
    $(`${name}-view`).hidden = name !== v;
    $(`tab-${name}`).classList.toggle("on", name === v);
  }
}

function markHighlighted() {
  // the layers a Paper row counts stay pinned ("pin"); hovering ("hl") comes and goes on top
  document.querySelectorAll("[data-layer].pin").forEach((e) => e.classList.remove("pin"));
  if (!state.hl) return;
  for (const name of state.hl.split(",")) {
    document.querySelectorAll("[data-layer]").forEach((e) => {
      const n = e.getAttribute("data-layer");
      if (n === name || n.startsWith(name + ".")) e.classList.add("pin");
    });
  }
  const pinned = document.querySelector("#layers tbody tr.pin");
  if (pinned) { pinned.scrollIntoView({ block: "center" }); window.scrollTo(0, window.scrollY); } // vertically only
}

async function update() {
  writeHash();
  showView();
  if (state.view === "paper") { await showPaper(state, $); return; }
  if (state.view === "compare") { await showCompare(state, $); return; }
  if (!MINE.includes(state.view) || !state.source.trim()) return;
  const mine = ++seq;
  try {
    const r = await api("/api/analyze", { source: state.source, input: state.input, batch_size: 1, dtype: state.dtype });
    if (mine !== seq) return;
    $("error").hidden = true;
    $("result").classList.remove("stale");
    const leaves = r.layers.filter((l) => l.is_leaf);
    showTotals(r);
    showTable(leaves);
    showDiagram(leaves);
    markHighlighted();
    lastReport = r;
  } catch (err) {
    if (mine === seq) showError(err);
  }
  if (mine === seq) $("result").dataset.shown = state.source; // what is on screen answers this text (tests, benchmark)
}
let lastReport = null;

function schedule() { clearTimeout(timer); timer = setTimeout(update, 250); }

async function init() {
  readHash();
  if (!state.source) state.source = "Input->(Conv)6c5w1s0p->(MaxPool)2w2s->(Conv)16c5w1s0p->(MaxPool)2w2s->(Flat)400->120fc->84fc->10fc->(Output)";
  try {
    const models = await api("/api/models");
    const list = Array.isArray(models) ? models : models.models || [];
    for (const m of list) {
      const name = typeof m === "string" ? m : m.name;
      const attrs = { value: name };
      if (m.default_input) attrs["data-input"] = m.default_input.join("x");
      $("picker").append(el("option", attrs, name));
    }
  } catch (err) { /* the text box still works */ }
  for (const [key, p] of Object.entries(PRESETS)) $("compare-preset").append(el("option", { value: key }, p.label));
  syncControls();
  $("source").addEventListener("input", (e) => { state.source = e.target.value; state.hl = ""; schedule(); });
  $("train-it").addEventListener("click", () => { // the Train view, with this network and its input side
    const picked = $("picker").value;
    $("train-model").value = picked || state.source.trim();
    const side = String(state.input || "").split(/[^0-9]+/).filter(Boolean).pop();
    $("train-input-size").value = picked || !side ? "" : side;
    location.hash = "#view=train";
  });
  $("picker").addEventListener("change", async (e) => {
    const name = e.target.value;
    if (!name) return;
    if (!(name in notationOf)) {
      try { notationOf[name] = (await api(`/api/notation/${encodeURIComponent(name)}`)).notation; } catch (err) { notationOf[name] = null; }
    }
    if ($("picker").value !== name) return; // picked another one meanwhile
    state.source = notationOf[name] || name; // its canonical notation, where it has one
    state.hl = "";
    const m = [...e.target.options].find((o) => o.value === name);
    if (m && m.dataset.input) state.input = m.dataset.input;
    syncControls();
    update();
  });
  for (const id of ["input", "dtype"]) $(id).addEventListener("input", (e) => { state[id] = e.target.value; schedule(); });
  // the batch changes the training memory only: no new analysis
  $("batch").addEventListener("input", (e) => { state.batch = e.target.value; writeHash(); if (lastReport) showTotals(lastReport); });
  $("compare-preset").addEventListener("change", (e) => {
    state.preset = e.target.value;
    const p = PRESETS[state.preset];
    if (p) { [state.a, state.b] = p.pairs[0]; state.ia = ""; state.ib = ""; }
    syncControls();
    update();
  });
  for (const [id, key] of [["compare-a", "a"], ["compare-b", "b"], ["compare-ia", "ia"], ["compare-ib", "ib"]]) {
    $(id).addEventListener("input", (e) => { state[key] = e.target.value; schedule(); });
  }
  $("compare-dtype").addEventListener("change", (e) => { state.cdtype = e.target.value; update(); });
  $("compare-same").addEventListener("change", () => redrawLayers($));
  $("paper-table").addEventListener("change", (e) => { state.table = e.target.value; update(); });
  $("optimizer").addEventListener("change", (e) => { state.optimizer = e.target.value; writeHash(); if (lastReport) showTotals(lastReport); });
  window.addEventListener("hashchange", () => {
    readHash(); // a link may carry only some keys (#view=paper): the others stay
    syncControls();
    update();
  });
  update();
}

init();
