// The layer table and the stage diagram of a summary (GET /api/models/<name>, /api/summary): the Zoo and the
// Design page show a network the same way; Inspect shows a run's in a side card (`compact`: no MACs or receptive
// field), each row opening that layer (`onClick(row)`).
import { el, fmt, table } from "/static/lab.js";

export function layerTable(summary, onClick, compact = false) {
  const columns = [
    ["layer", (r) => r.name], ["kind", (r) => r.kind], ["output", (r) => fmt.shape(r.output_shape), "num"],
    ["params", (r) => fmt.int(r.params), "num"], ["MACs", (r) => fmt.big(r.macs), "num"],
    ["receptive field", (r) => (r.receptive_field === null ? "–" : `${r.receptive_field}px`), "num"],
  ];
  return table(compact ? columns.slice(0, 4) : columns, summary.rows, onClick);
}

export function stageDiagram(summary) {
  const parts = [el("div", { class: "stage" }, el("b", {}, "input"), fmt.shape(summary.input))];
  for (const stage of summary.stages) {
    parts.push(el("span", { class: "arrow" }, "→"));
    parts.push(el("div", { class: "stage", title: `${stage.layers} layers, ${fmt.int(stage.params)} params` },
      el("b", {}, stage.name), fmt.shape(stage.output_shape), el("br"), `${fmt.big(stage.params)} params`));
  }
  return parts;
}
