// The Compare view: two networks side by side (zoo name, name(options) or notation on
// either side), the structural diff of their layers and the cost deltas per stage and in
// total, all from /api/compare (analysis.compare's dict; the page only formats it).
// Presets: the lecture's pairs, VGG A -> A-LRN -> B -> C -> D -> E as successive diffs and
// resnet20 against each residual-unit variant (a strip of steps; one step shown in full).
import { api, bytes, el, int } from "./format.js";

const UNITS = ["bn_after_add", "relu_before_add", "relu_only_preact", "full_preact"];
export const PRESETS = {
  alexnet: { label: "alexnet_paper / alexnet", pairs: [["alexnet_paper", "alexnet"]] },
  googlenet: { label: "googlenet_paper / googlenet", pairs: [["googlenet_paper", "googlenet"]] },
  resnet50: { label: "resnet50_paper / resnet50", pairs: [["resnet50_paper", "resnet50"]] },
  plain34: { label: "plain34 / resnet34", pairs: [["plain34", "resnet34"]] },
  vgg: {
    label: "VGG A -> A-LRN -> B -> C -> D -> E (successive diffs)",
    pairs: [["vgg_a", "vgg_a_lrn"], ["vgg_a_lrn", "vgg_b"], ["vgg_b", "vgg_c"], ["vgg_c", "vgg_d"], ["vgg_d", "vgg_e"]],
    names: { vgg_a: "A", vgg_a_lrn: "A-LRN", vgg_b: "B", vgg_c: "C", vgg_d: "D", vgg_e: "E" },
  },
  units: {
    label: "resnet20 with each residual-unit variant",
    pairs: UNITS.map((u) => ["resnet20", `resnet20(unit=${u})`]),
    names: Object.fromEntries([["resnet20", "resnet20 (original unit)"], ...UNITS.map((u) => [`resnet20(unit=${u})`, u])]),
  },
};

const signed = (n) => (n === null || n === undefined ? "" : `${n > 0 ? "+" : n < 0 ? "-" : "±"}${int(Math.abs(n))}`);
const signedBytes = (n) => (n === null || n === undefined ? "" : `${n > 0 ? "+" : n < 0 ? "-" : "±"}${bytes(Math.abs(n))}`);
const pct = (d, a) => (!a || d === null || d === undefined ? "" : `${d >= 0 ? "+" : ""}${((100 * d) / a).toFixed(1)}%`);
const cls = (n) => (n > 0 ? "n up" : n < 0 ? "n down" : "n");
const pair = (v) => (Array.isArray(v) ? (v.length === 2 && v[0] === v[1] ? `${v[0]}` : v.join("x")) : `${v}`);

// one layer as the lecture writes it: 96c11w4s0p, 3w2s, 4096fc, else its type
export function describe(l) {
  if (!l) return "";
  const k = l.kernel !== undefined ? pair(l.kernel) : "";
  if (/^Conv/.test(l.type)) return `${l.width}c${k}w${pair(l.stride)}s${pair(l.padding)}p${l.groups > 1 ? ` g${l.groups}` : ""}`;
  if (/Pool/.test(l.type) && l.kernel !== undefined) return `${k}w${pair(l.stride)}s ${l.type.replace(/2d$/, "")}`;
  if (/Pool/.test(l.type) && l.output !== undefined) return `${l.type.replace(/2d$/, "")} ${pair(l.output)}`;
  if (l.type === "Linear") return `${l.width}fc`;
  if (/BatchNorm/.test(l.type)) return `BN ${l.width}`;
  if (l.size !== undefined) return `${l.type} ${l.size}`;
  return l.type;
}

const WHAT = { kernel: "kernel", stride: "stride", padding: "padding", groups: "groups", in: "input width", width: "width", output: "output", size: "size" };
function changes(ch) {
  return Object.entries(ch || {}).map(([k, [a, b]]) => `${WHAT[k] || k} ${pair(a)} -> ${pair(b)}`).join("; ");
}

function side(l) {
  return l ? [el("span", { class: "lname" }, l.name), " ", el("code", {}, describe(l))] : [];
}

function totalsRows(c) {
  const rows = [
    ["parameters", "params", int, signed],
    ["MACs", "macs", int, signed],
    ["FLOPs", "flops", int, signed],
    ["parameter memory", "param_bytes", bytes, signedBytes],
    ["peak inference memory", "peak_inference_bytes", bytes, signedBytes],
    ["training memory (SGD with momentum)", "training_bytes", bytes, signedBytes],
  ];
  const input = el("tr", {}, el("td", {}, "input"), el("td", { class: "n" }, c.a.input_size.join("x")),
    el("td", { class: "n" }, c.b.input_size.join("x")), el("td"), el("td"));
  return [input, ...rows.map(([label, key, fmt, sfmt]) => el("tr", { "data-delta": key },
    el("td", {}, label), el("td", { class: "n" }, fmt(c.a[key])), el("td", { class: "n" }, fmt(c.b[key])),
    el("td", { class: cls(c.delta[key]) }, sfmt(c.delta[key])), el("td", { class: "n pct" }, pct(c.delta[key], c.a[key]))))];
}

function stageRows(c) {
  return c.stages.map((s) => {
    const a = s.a || {}, b = s.b || {};
    return el("tr", { class: !s.a ? "added" : !s.b ? "removed" : "" },
      el("td", {}, s.stage), el("td", { class: "n" }, s.a ? int(a.params) : "-"), el("td", { class: "n" }, s.b ? int(b.params) : "-"),
      el("td", { class: cls(s.delta.params) }, signed(s.delta.params)),
      el("td", { class: "n" }, s.a ? int(a.macs) : "-"), el("td", { class: "n" }, s.b ? int(b.macs) : "-"),
      el("td", { class: cls(s.delta.macs) }, signed(s.delta.macs)),
      el("td", { class: cls(s.delta.param_bytes) }, signedBytes(s.delta.param_bytes)),
      el("td", { class: cls(s.delta.saved_bytes) }, signedBytes(s.delta.saved_bytes)),
      el("td", { class: cls(s.delta.output_bytes) }, signedBytes(s.delta.output_bytes)));
  });
}

function layerRows(c, showSame) {
  const out = [];
  let hidden = 0;
  const flush = () => {
    if (hidden) out.push(el("tr", { class: "gap" }, el("td", { colspan: "5" }, `... ${hidden} unchanged layer${hidden > 1 ? "s" : ""}`)));
    hidden = 0;
  };
  for (const r of c.layers) {
    if (r.op === "same" && !showSame) { hidden += 1; continue; }
    flush();
    const d = (r.b ? r.b.params : 0) - (r.a ? r.a.params : 0);
    const mark = { same: "", changed: "~", added: "+", removed: "-" }[r.op];
    out.push(el("tr", { class: r.op, "data-op": r.op }, el("td", { class: "op" }, mark), el("td", {}, ...side(r.a)),
      el("td", {}, ...side(r.b)), el("td", {}, r.op === "changed" ? changes(r.changes) : r.op === "same" ? "" : r.op),
      el("td", { class: cls(d) }, d ? signed(d) : "")));
  }
  flush();
  return out;
}

export function showComparison(c, $, showSame) {
  const name = (t) => (t.kind === "notation" ? "notation" : t.source);
  $("compare-title").textContent = `A: ${name(c.a)}   B: ${name(c.b)}`;
  const n = c.counts;
  $("compare-counts").textContent = `${n.changed} changed, ${n.added} added, ${n.removed} removed, ${n.same} unchanged ` +
    "(weight, pooling, normalisation and activation layers, in forward order)";
  $("compare-totals").tBodies[0].replaceChildren(...totalsRows(c));
  $("compare-stages").tBodies[0].replaceChildren(...stageRows(c));
  $("compare-layers").tBodies[0].replaceChildren(...layerRows(c, showSame));
}

function stepLabel(preset, [a, b]) {
  const names = preset.names || {};
  return `${names[a] || a} -> ${names[b] || b}`;
}

// the strip of a preset with several pairs: each step's totals, one click shows it in full
async function showSteps(state, $, body) {
  const preset = PRESETS[state.preset];
  const box = $("compare-steps");
  if (!preset || preset.pairs.length < 2) { box.replaceChildren(); box.dataset.shown = ""; return; }
  const shown = `${state.preset}|${body.dtype}`;
  if (box.dataset.shown === shown && $("compare-step-table")) { // the same strip: only move the highlight
    preset.pairs.forEach(([a, b], i) => $("compare-step-table").tBodies[0].rows[i].classList.toggle("on", a === state.a && b === state.b));
    return;
  }
  box.dataset.shown = shown;
  const table = el("table", { id: "compare-step-table" }, el("thead", {}, el("tr", {},
    el("th", {}, preset.label), el("th", {}, "params B - A"), el("th", {}, "MACs B - A"), el("th", {}, "training memory B - A"),
    el("th", {}, "changed / added / removed"))), el("tbody"));
  box.replaceChildren(table);
  for (const [a, b] of preset.pairs) {
    const tr = el("tr", { class: "link" + (a === state.a && b === state.b ? " on" : ""), title: "show this step in full" },
      el("td", {}, stepLabel(preset, [a, b])), el("td", { class: "n" }, "..."), el("td"), el("td"), el("td"));
    tr.addEventListener("click", () => {
      const p = new URLSearchParams(location.hash.slice(1));
      p.set("view", "compare"); p.set("a", a); p.set("b", b); p.set("ia", ""); p.set("ib", "");
      location.hash = p.toString();
    });
    table.tBodies[0].append(tr);
  }
  for (const [i, [a, b]] of preset.pairs.entries()) {
    try {
      const c = await api("/api/compare", { ...body, a, b, input_a: null, input_b: null });
      const tr = table.tBodies[0].rows[i];
      const n = c.counts;
      tr.cells[1].replaceChildren(signed(c.delta.params));
      tr.cells[2].replaceChildren(signed(c.delta.macs));
      tr.cells[3].replaceChildren(signedBytes(c.delta.training_bytes));
      tr.cells[4].replaceChildren(`${n.changed} / ${n.added} / ${n.removed}`);
      for (const j of [1, 2, 3]) tr.cells[j].className = cls([c.delta.params, c.delta.macs, c.delta.training_bytes][j - 1]);
    } catch (err) {
      table.tBodies[0].rows[i].cells[1].replaceChildren(err.message);
    }
  }
}

let seq = 0;
export async function showCompare(state, $) {
  const mine = ++seq;
  const body = { a: state.a, b: state.b, input_a: state.ia || null, input_b: state.ib || null, batch_size: 1, dtype: state.cdtype };
  const steps = showSteps(state, $, body);
  try {
    const c = await api("/api/compare", body);
    if (mine !== seq) return;
    $("compare-error").hidden = true;
    $("compare-result").classList.remove("stale");
    showComparison(c, $, $("compare-same").checked);
    lastComparison = c;
  } catch (err) {
    if (mine !== seq) return;
    const box = $("compare-error");
    const d = err.data || {};
    const where = /^b\b/.test(d.error || "") ? "B" : "";
    box.textContent = d.position !== undefined && d.position !== null && d.text
      ? `${d.message}\n${d.text.replace(/\s/g, " ")}\n${" ".repeat(d.position)}^`
      : `${where ? where + ": " : ""}${err.message}`;
    box.hidden = false;
    $("compare-result").classList.add("stale");
  }
  await steps;
}
let lastComparison = null;
export function redrawLayers($) {
  if (lastComparison) $("compare-layers").tBodies[0].replaceChildren(...layerRows(lastComparison, $("compare-same").checked));
}
