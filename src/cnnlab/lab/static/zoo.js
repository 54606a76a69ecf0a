"use strict";
let current = null;

function layerTable(summary) {
  return table([
    ["layer", (r) => r.name], ["kind", (r) => r.kind], ["output", (r) => fmt.shape(r.output_shape), "num"],
    ["params", (r) => fmt.int(r.params), "num"], ["MACs", (r) => fmt.big(r.macs), "num"],
    ["receptive field", (r) => (r.receptive_field === null ? "–" : `${r.receptive_field}px`), "num"],
  ], summary.rows);
}

function stageDiagram(summary) {
  const parts = [el("div", { class: "stage" }, el("b", {}, "input"), fmt.shape(summary.input))];
  for (const stage of summary.stages) {
    parts.push(el("span", { class: "arrow" }, "→"));
    parts.push(el("div", { class: "stage", title: `${stage.layers} layers, ${fmt.int(stage.params)} params` },
      el("b", {}, stage.name), fmt.shape(stage.output_shape), el("br"), `${fmt.big(stage.params)} params`));
  }
  return parts;
}

async function showModel(row) {
  current = row;
  $("detail-title").textContent = `${row.name} (${row.family}, ${row.year})`;
  $("detail-paper").textContent = `${row.paper}. ${row.key_idea}`;
  const input = $("detail-input").value.trim();
  showError($("detail-error"));
  try {
    const summary = await api("GET", `/api/models/${encodeURIComponent(row.name)}` + (input ? `?input=${encodeURIComponent(input)}` : ""));
    $("stages").replaceChildren(...stageDiagram(summary));
    $("totals").textContent = `input ${fmt.shape(summary.input)}: ${fmt.int(summary.total_params)} parameters, ${fmt.big(summary.total_macs)} MACs per image`;
    $("layers").replaceChildren(layerTable(summary));
  } catch (error) { showError($("detail-error"), error); }
}

async function showSpec() {
  showError($("spec-error"));
  try {
    const summary = await api("GET", `/api/summary?spec=${encodeURIComponent($("spec").value)}&input=${encodeURIComponent($("spec-input").value)}`);
    $("spec-rows").replaceChildren(el("div", { class: "stages" }, ...stageDiagram(summary)), layerTable(summary));
  } catch (error) { showError($("spec-error"), error); $("spec-rows").replaceChildren(); }
}

async function main() {
  const models = await api("GET", "/api/models");
  $("models").replaceChildren(table([
    ["model", (m) => m.name], ["family", (m) => m.family], ["year", (m) => m.year, "num"],
    ["depth", (m) => m.depth ?? "–", "num"], ["params", (m) => fmt.big(m.params), "num"], ["MACs", (m) => fmt.big(m.macs), "num"],
    ["ImageNet top-1", (m) => (m.top1 === null ? "–" : `${m.top1.toFixed(1)}%`), "num"],
    ["key idea", (m) => m.key_idea],
  ], models, showModel));
  const families = [...new Set(models.map((m) => m.family))];
  Plotly.newPlot("timeline", families.map((family) => {
    const members = models.filter((m) => m.family === family);
    return { type: "scatter", mode: "markers", name: family, x: members.map((m) => m.year), y: members.map((m) => m.params),
             text: members.map((m) => `${m.name}<br>${fmt.big(m.params)} params, depth ${m.depth}` + (m.top1 === null ? "" : `, ImageNet top-1 ${m.top1.toFixed(1)}%`) + `<br>${m.key_idea}`), hoverinfo: "text",
             marker: { size: 10 } };
  }), { margin: { t: 10, r: 10 }, xaxis: { title: { text: "year" } }, yaxis: { title: { text: "parameters" }, type: "log" }, legend: { font: { size: 10 } } },
  PLOT_CONFIG);
  $("timeline").on("plotly_click", (event) => {
    const name = event.points[0].text.split("<br>")[0];
    showModel(models.find((m) => m.name === name));
  });
  $("detail-go").addEventListener("click", () => current && showModel(current));
  $("spec-go").addEventListener("click", showSpec);
  const first = models.find((m) => m.name === "lenet5") || models[0];
  if (first) showModel(first);
  showSpec();
}
main();
