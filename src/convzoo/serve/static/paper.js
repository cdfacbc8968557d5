// The Paper view: the lecture's tables (published, computed, difference, the note); a row
// that names the modules it counts opens them, highlighted, in the Build view.
import { api, el, int } from "./format.js";

function pct(x) {
  return x === null || x === undefined ? "" : `${x >= 0 ? "+" : ""}${(100 * x).toFixed(1)}%`;
}

export async function showPaper(state, $) {
  const t = await api(`/api/paper/${encodeURIComponent(state.table)}`);
  $("paper-title").textContent = t.title || t.table;
  const rows = t.rows.map((r) => {
    const tr = el("tr", r.model ? { class: "link", title: `open ${r.model} in Build` } : {},
      el("td", {}, r.row), el("td", {}, r.quantity || ""), el("td", { class: "n" }, r.printed || int(r.published)),
      el("td", { class: "n" }, int(r.computed)), el("td", { class: "n" }, pct(r.rel_diff)),
      el("td", { class: "note" }, r.note || ""));
    if (r.model) {
      tr.addEventListener("click", () => {
        const p = new URLSearchParams({ view: "build", source: r.model,
          input: document.querySelector(`#picker option[value="${r.model}"]`)?.dataset.input || state.input, batch: state.batch,
          dtype: state.dtype, optimizer: state.optimizer, hl: (r.layers || []).join(","), table: state.table });
        location.hash = p.toString();
      });
    }
    return tr;
  });
  $("paper").tBodies[0].replaceChildren(...rows);
}
