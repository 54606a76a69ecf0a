import { $, api, attempt, el, fmt, latest, table } from "/static/lab.js";
import { layerTable, stageDiagram } from "/static/layers.js";
import { LEGEND_BELOW, PLOT_CONFIG, plotText, traceStyle } from "/static/plots.js";

let current = null;

async function showModel(row) {
  current = row;
  $("detail-title").textContent = `${row.name} (${row.family}, ${row.year})`;
  $("detail-paper").textContent = `${row.paper}. ${row.key_idea}`;
  const input = $("detail-input").value.trim();
  await attempt($("detail-error"), async () => {
    const summary = await latest("model", api("GET", `/api/models/${encodeURIComponent(row.name)}` + (input ? `?input=${encodeURIComponent(input)}` : "")));
    $("stages").replaceChildren(...stageDiagram(summary));
    $("totals").textContent = `input ${fmt.shape(summary.input)}: ${fmt.int(summary.total_params)} parameters, ${fmt.big(summary.total_macs)} MACs per image`;
    $("layers").replaceChildren(layerTable(summary));
  }, () => {  // a stale table would read as the answer to the bad input
    for (const id of ["stages", "layers"]) $(id).replaceChildren();
    $("totals").textContent = "";
  });
}

async function showSpec() {
  await attempt($("spec-error"), async () => {
    const summary = await latest("spec", api("GET", `/api/summary?spec=${encodeURIComponent($("spec").value)}&input=${encodeURIComponent($("spec-input").value)}`));
    $("spec-rows").replaceChildren(el("div", { class: "stages" }, ...stageDiagram(summary)), layerTable(summary));
  }, () => $("spec-rows").replaceChildren());
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
  const narrow = $("timeline").clientWidth < 600;  // a phone: two legend entries a row, not eight
  Plotly.newPlot("timeline", families.map((family, i) => {
    const members = models.filter((m) => m.family === family);
    return { type: "scatter", mode: "markers", name: plotText(family), x: members.map((m) => m.year), y: members.map((m) => m.params),
             customdata: members.map((m) => m.name), hoverinfo: "text",
             text: members.map((m) => [plotText(m.name), `${fmt.big(m.params)} params, depth ${m.depth}` + (m.top1 === null ? "" : `, ImageNet top-1 ${m.top1.toFixed(1)}%`), plotText(m.key_idea)].join("<br>")),
             marker: { size: 10, ...traceStyle(i), line: { width: 0.5, color: "#fff" } } };
  }), { margin: { t: 10, r: 10, b: 40 }, xaxis: { title: { text: "year" }, automargin: true }, yaxis: { title: { text: "parameters" }, type: "log" },
        legend: { ...LEGEND_BELOW, font: { size: 11 }, entrywidthmode: "fraction", entrywidth: narrow ? 0.5 : 0.125 } },
  PLOT_CONFIG);
  $("timeline").on("plotly_click", (event) => showModel(models.find((m) => m.name === event.points[0].customdata)));
  $("detail-go").addEventListener("click", () => current && showModel(current));
  $("spec-go").addEventListener("click", showSpec);
  const first = models.find((m) => m.name === "lenet5") || models[0];
  if (first) showModel(first);
  showSpec();
}
main();
