// The Inside view: a trained network (shipped weights or a run's last checkpoint) seen from
// inside: its first-layer filters (the lecture's "AlexNet Filters" slide), the feature maps
// of a test image (by index or class) or an uploaded one after each stage, the top-5
// predictions and which filters respond most, and a confusion matrix over the test set.
import { el } from "./format.js";
import { getJSON, onView, q, send } from "./runs.js";

const $ = (id) => document.getElementById(id);
const png = (b64, attrs = {}) => el("img", { src: `data:image/png;base64,${b64}`, ...attrs });
// styles through the CSSOM: the page's Content-Security-Policy refuses inline style attributes
const css = (e, text) => { e.style.cssText = text; return e; };
let loaded = false;
let current = null; // the source shown
let seq = 0;

function fail(err) {
  $("inside-error").textContent = err.message;
  $("inside-error").hidden = false;
}

async function loadSources() {
  const d = await getJSON("/api/inside/sources");
  const sel = $("inside-source");
  const keep = sel.value;
  const group = (label, items, text) => {
    const g = el("optgroup", { label });
    for (const s of items) g.append(el("option", { value: s.source }, text(s)));
    return g;
  };
  sel.replaceChildren(
    group("shipped weights", d.weights, (s) => `${s.model} (${s.tag}${s.test_top1 ? `, ${s.test_top1.toFixed(2)}%` : ""})`),
    group("runs (last checkpoint)", d.runs, (s) => `${s.source.slice(4)} (${s.model}, ${s.status})`));
  if ([...sel.options].some((o) => o.value === keep)) sel.value = keep;
}

async function showSource() {
  const source = $("inside-source").value;
  if (!source) return;
  current = source;
  $("inside-error").hidden = true;
  $("confusion").replaceChildren();
  $("confusion-examples").replaceChildren();
  try {
    const f = await getJSON(`/api/inside/filters?${q({ source })}`);
    if (source !== current) return;
    $("filters-title").textContent = `first-layer filters: ${f.layer}, ${f.shape.join(" x ")}${f.colour ? "" : " (grey: mean over input channels)"}`;
    $("filters").replaceChildren(...f.filters.map((x) => el("figure", { class: "filter", "data-filter": x.index },
      png(x.png, { alt: `filter ${x.index}`, title: `filter ${x.index}, norm ${x.norm.toFixed(3)}` }), el("figcaption", {}, String(x.index)))));
    const cls = $("inside-class");
    cls.replaceChildren(el("option", { value: "" }, "(by index)"), ...(f.classes || []).map((c) => el("option", { value: c }, c)));
    await showImage();
  } catch (err) { fail(err); }
}

async function showImage(upload) {
  const source = current;
  const mine = ++seq;
  try {
    let d;
    if (upload) {
      d = await send(`/api/inside/upload?${q({ source })}`, upload, { raw: true });
    } else {
      const cls = $("inside-class").value;
      d = await getJSON(`/api/inside/features?${q(cls ? { source, class: cls } : { source, index: $("inside-index").value || 0 })}`);
      if (mine === seq && d.index !== null) $("inside-index").value = d.index;
    }
    if (mine !== seq || source !== current) return;
    $("inside-error").hidden = true;
    showFeatures(d);
  } catch (err) { if (mine === seq) fail(err); }
}

function showFeatures(d) {
  const top = d.predictions[0];
  const right = d.label_name === null ? "" : top.class === d.label_name ? "right" : "wrong";
  $("inside-input").replaceChildren(
    png(d.input.png, { class: "input", alt: "the input as the network sees it" }),
    el("div", { class: "caption" },
      d.index === null ? `uploaded image (${d.uploaded.shape.join(" x ")})` : `test image ${d.index}: ${d.label_name}`),
    el("div", { class: `verdict ${right}`, id: "inside-predicted" }, `predicted: ${top.class}`));
  $("top5").replaceChildren(...d.predictions.map((p) => el("div", { class: "bar" + (p.class === d.label_name ? " true" : "") },
    el("span", { class: "name" }, p.class),
    el("span", { class: "track" }, css(el("span", { class: "fill" }), `width:${(100 * p.probability).toFixed(1)}%`)),
    el("span", { class: "p" }, `${(100 * p.probability).toFixed(1)}%`))));
  // the filters that respond most to this image, marked in the grid
  const ranked = d.filters.ranked;
  const strongest = ranked.slice(0, 3).filter((r) => r.response > 0).map((r) => r.index);
  document.querySelectorAll("#filters .filter").forEach((f) => {
    const i = Number(f.dataset.filter);
    f.classList.toggle("strong", strongest.includes(i));
    f.title = `filter ${i}: mean response ${(ranked.find((r) => r.index === i)?.response ?? 0).toFixed(3)}`;
  });
  $("filters-strong").textContent = strongest.length ? `strongest responses to this image: filters ${strongest.join(", ")} (outlined)` : "";
  $("stages").replaceChildren(...d.stages.map((s) => el("div", { class: "stage", "data-stage": s.layer },
    el("div", { class: "stage-title" }, `${s.layer}: ${s.shape.join(" x ")}${s.dead_channels ? `, ${s.dead_channels} dead` : ""} (strongest ${s.maps.length})`),
    el("div", { class: "maps" }, ...s.maps.map((m) => png(m.png, { title: `channel ${m.channel}, mean ${m.mean.toFixed(3)}` }))))));
}

async function showConfusion() {
  const source = current;
  const n = $("confusion-n").value;
  $("confusion-run").disabled = true;
  $("confusion").replaceChildren(el("caption", {}, "computing over the test set..."));
  try {
    const d = await getJSON(`/api/inside/confusion?${q(n ? { source, n } : { source })}`);
    if (source !== current) return;
    const max = Math.max(...d.matrix.flat());
    const head = el("tr", {}, el("th", {}, "true \\ predicted"), ...d.classes.map((c) => el("th", { class: "rot" }, c)));
    const rows = d.matrix.map((row, i) => el("tr", {}, el("th", {}, d.classes[i] || String(i)), ...row.map((v, j) => {
      const a = v / (max || 1);
      const style = i === j ? `background: rgba(43,108,176,${(0.1 + 0.9 * a).toFixed(2)}); color:${a > 0.5 ? "#fff" : "#123"}`
        : v ? `background: rgba(192,86,33,${Math.min(1, 0.15 + 3 * a).toFixed(2)})` : "";
      return css(el("td", { class: "n" }, String(v)), style);
    })));
    $("confusion").replaceChildren(el("caption", {}, `top-1 ${d.top1.toFixed(2)}% over ${d.count.toLocaleString("en-US")} test images`),
      el("thead", {}, head), el("tbody", {}, ...rows));
    $("confusion-examples").replaceChildren(...d.misclassified.map((m) => el("figure", { class: "wrong" },
      png(m.png, { alt: `test image ${m.index}` }),
      el("figcaption", {}, `#${m.index}: ${d.classes[m.true]} → ${d.classes[m.predicted]} (${(100 * m.probability).toFixed(0)}%)`))));
  } catch (err) { fail(err); } finally { $("confusion-run").disabled = false; }
}

async function init() {
  if (loaded) { await loadSources(); return; }
  loaded = true;
  $("inside-source").addEventListener("change", showSource);
  $("inside-show").addEventListener("click", () => showImage());
  $("inside-index").addEventListener("change", () => { $("inside-class").value = ""; showImage(); });
  $("inside-class").addEventListener("change", () => showImage());
  $("inside-upload").addEventListener("change", (e) => {
    const file = e.target.files[0];
    if (file) showImage(file);
  });
  $("confusion-run").addEventListener("click", showConfusion);
  try {
    await loadSources();
    await showSource();
  } catch (err) { fail(err); }
}

onView((v) => { if (v === "inside") init(); });
