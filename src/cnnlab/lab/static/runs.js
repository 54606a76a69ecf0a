import { $, api, attempt, el, fmt, showError, table } from "/static/lab.js";
import { LEGEND_BELOW, PLOT_CONFIG, plotText, traceStyle } from "/static/plots.js";

const ticked = new Set();
const metrics = {};

async function overlay() {
  $("overlay-card").hidden = ticked.size === 0;  // no empty chart: it appears with the first ticked run
  if (!ticked.size) return;
  for (const name of ticked) if (!metrics[name]) metrics[name] = (await api("GET", `/api/runs/${name}`)).metrics;
  Plotly.react("overlay", [...ticked].map((name, i) => {
    const { color, symbol } = traceStyle(i);
    return { x: metrics[name].map((m) => m.epoch), y: metrics[name].map((m) => m.val_accuracy), name: plotText(name), mode: "lines+markers", line: { color }, marker: { color, symbol, size: 8 } };
  }), { margin: { t: 10 }, xaxis: { title: { text: "epoch" }, dtick: 1, automargin: true }, yaxis: { title: { text: "val accuracy" } }, showlegend: true, legend: LEGEND_BELOW }, PLOT_CONFIG);
}

// Deleting a run removes its folder for good: the page asks first.
async function remove(event, name) {
  showError($("error"));
  if (!window.confirm(`Delete the run ${name} and all its files? This cannot be undone.`)) return;
  event.target.disabled = true;
  await attempt($("error"), async () => {
    await api("DELETE", `/api/runs/${name}`);
    ticked.delete(name);
    delete metrics[name];
    await board();
  }, () => { event.target.disabled = false; });
}

async function board() {
  const runs = await api("GET", "/api/runs");
  const tick = (run) => el("input", { type: "checkbox", checked: ticked.has(run.name), onchange: (e) => { e.target.checked ? ticked.add(run.name) : ticked.delete(run.name); overlay(); } });
  const del = (run) => el("button", { class: "danger delete", "data-run": run.name, onclick: (e) => remove(e, run.name) }, "Delete");
  $("board").replaceChildren(runs.length ? table([
    ["", tick], ["run", (r) => el("a", { href: `/runs/${r.name}` }, r.name)], ["model", (r) => r.model], ["dataset", (r) => r.dataset],
    ["epochs", (r) => r.epochs ?? "–", "num"],
    ["test accuracy", (r) => (r.test_accuracy === null || r.test_accuracy === undefined ? r.status : fmt.pct(r.test_accuracy)), "num"],
    ["params", (r) => fmt.int(r.params), "num"], ["train s", (r) => fmt.num(r.train_seconds, 1), "num"],
    ["images/s", (r) => fmt.int(r.train_images_per_second && Math.round(r.train_images_per_second)), "num"],
    ["", del],
  ], runs) : el("p", { class: "muted" }, "No runs yet: start one on the Train page."));
  overlay();
  return runs;
}

async function main() {
  const runs = await api("GET", "/api/runs");
  for (const run of runs.slice(0, 3)) if (run.test_accuracy !== null && run.test_accuracy !== undefined) ticked.add(run.name);
  await board();
}
attempt($("error"), main);
