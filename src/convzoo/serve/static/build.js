// The Build view: notation or zoo model in, layer table, totals and a block diagram out.
import { api, bytes, el, int, shape } from "./format.js";
import { showPaper } from "./paper.js";

const $ = (id) => document.getElementById(id);
const state = { view: "build", source: "", input: "1x32x32", batch: "1", dtype: "float32", optimizer: "sgd_momentum", hl: "", table: "lenet" };
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

function syncControls() {
  $("source").value = state.source;
  $("input").value = state.input;
  $("batch").value = state.batch;
  $("dtype").value = state.dtype;
  $("optimizer").value = state.optimizer;
  $("paper-table").value = state.table;
  $("picker").value = [...$("picker").options].some((o) => o.value === state.source) ? state.source : "";
}

function card(k, v, d = "") {
  return el("div", { class: "card", "data-total": k }, el("div", { class: "k" }, k), el("div", { class: "v" }, v),
    el("div", { class: "d" }, d));
}

function showTotals(r) {
  const m = r.memory;
  const opt = state.optimizer;
  const optBytes = m.optimizer_state_bytes[opt];
  const train = m.training_bytes_by_optimizer[opt];
  $("totals").replaceChildren(
    card("parameters", int(r.total_params), `${int(r.trainable_params)} trainable`),
    card("MACs", int(r.macs), `FLOPs ${int(r.flops)}`),
    card("parameter memory", bytes(m.param_bytes)),
    card("peak inference memory", bytes(m.peak_inference_bytes)),
    card(`training memory (${OPT_NAMES[opt]})`, bytes(train),
      `weights ${bytes(m.param_bytes)} + gradients ${bytes(m.gradient_bytes)} + optimizer ${bytes(optBytes)} + saved activations ${bytes(m.saved_activation_bytes)}`),
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
    el("td", { class: "n" }, int(l.params)), el("td", { class: "n" }, int(l.macs))), l.name)));
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
  $("build-view").hidden = state.view === "paper";
  $("paper-view").hidden = state.view !== "paper";
  $("tab-build").classList.toggle("on", state.view !== "paper");
  $("tab-paper").classList.toggle("on", state.view === "paper");
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
  document.querySelector("#layers tbody tr.pin")?.scrollIntoView({ block: "center" });
}

async function update() {
  writeHash();
  showView();
  if (state.view === "paper") { await showPaper(state, $); return; }
  if (!state.source.trim()) return;
  const mine = ++seq;
  try {
    const r = await api("/api/analyze", { source: state.source, input: state.input, batch_size: Number(state.batch), dtype: state.dtype });
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
  syncControls();
  $("source").addEventListener("input", (e) => { state.source = e.target.value; state.hl = ""; schedule(); });
  $("picker").addEventListener("change", (e) => {
    if (!e.target.value) return;
    state.source = e.target.value;
    const m = [...e.target.options].find((o) => o.value === e.target.value);
    if (m && m.dataset.input) state.input = m.dataset.input;
    syncControls();
    update();
  });
  for (const id of ["input", "batch", "dtype"]) $(id).addEventListener("input", (e) => { state[id] = e.target.value; schedule(); });
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
