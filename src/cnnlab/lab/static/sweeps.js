import { $, api, attempt, el, fmt, table } from "/static/lab.js";
import { LEGEND_BELOW, PLOT_CONFIG, plotText, traceStyle } from "/static/plots.js";

const POLL_MS = 2000;  // a trial takes seconds at least: polling the table is enough, and simpler than a stream
const shown = {};  // path -> the JSON last drawn, so an unchanged study is not redrawn (and its chart not reset)

function number(text) { return text === "" || text === undefined || text === null ? null : Number(text); }

// A trial's parameter as read: numbers compactly, anything else as written.
function paramCell(text) {
  const value = number(text);
  return value === null || Number.isNaN(value) ? String(text ?? "") : fmt.read(value);
}

function trialsTable(sweep) {
  const names = Object.keys(sweep.space);
  return table([
    ["trial", (t) => t.number, "num"],
    ["state", (t) => t.state],
    ...names.map((name) => [name, (t) => paramCell(t[name]), "num"]),
    ["val accuracy", (t) => (number(t.val_accuracy) === null ? "–" : fmt.pct(number(t.val_accuracy))), "num"],
    ["epochs", (t) => t.epochs, "num"],
    ["seconds", (t) => (number(t.seconds) === null ? "–" : fmt.num(number(t.seconds), 1)), "num"],
    ["run", (t) => (t.run_dir ? el("a", { href: `/runs/${sweep.path}/${t.run_dir}` }, t.run_dir) : "")],
  ], sweep.trials);
}

// The optimisation history, drawn here from the table rather than by embedding Optuna's HTML (inline scripts the
// CSP refuses): each trial's validation accuracy by its number, and the best so far among the complete ones.
function drawHistory(node, sweep) {
  const scored = sweep.trials.filter((t) => number(t.val_accuracy) !== null).sort((a, b) => a.number - b.number);
  const traces = [];
  for (const [i, state] of ["COMPLETE", "PRUNED"].entries()) {
    const rows = scored.filter((t) => t.state === state);
    if (!rows.length) continue;
    const style = traceStyle(i);
    traces.push({ x: rows.map((t) => Number(t.number)), y: rows.map((t) => number(t.val_accuracy)), mode: "markers", name: plotText(state.toLowerCase()), marker: { size: 9, color: style.color, symbol: style.symbol } });
  }
  const complete = scored.filter((t) => t.state === "COMPLETE");
  let best = -Infinity;
  const running = complete.map((t) => (best = Math.max(best, number(t.val_accuracy))));
  if (complete.length) traces.push({ x: complete.map((t) => Number(t.number)), y: running, mode: "lines", line: { shape: "hv", color: traceStyle(2).color }, name: "best so far" });
  const layout = { margin: { t: 10, r: 20 }, xaxis: { title: { text: "trial" }, dtick: 1, automargin: true }, yaxis: { title: { text: "val accuracy" }, range: [0, 1.02], tickformat: ".0%", dtick: 0.25, automargin: true }, legend: LEGEND_BELOW };
  Plotly.react(node, traces, layout, PLOT_CONFIG);
  node.dataset.points = String(scored.length);
}

function bestLine(sweep) {
  if (!sweep.best) return el("p", { class: "muted" }, "No complete trial yet.");
  const head = `Best: trial ${sweep.best.number}, val accuracy ${fmt.pct(sweep.best.val_accuracy)}`;
  return el("div", { class: "best" }, el("p", {}, head), sweep.best.command ? el("pre", { class: "command" }, sweep.best.command) : null);
}

function counts(sweep) {
  const done = sweep.trials.filter((t) => t.state === "COMPLETE" || t.state === "PRUNED").length;
  const wanted = sweep.trials_wanted ? ` of ${sweep.trials_wanted}` : "";
  const state = sweep.job ? ` · job ${sweep.job.state}` : "";
  return `${done}${wanted} trials finished${state}`;
}

function sweepCard(sweep) {
  const what = sweep.model ? `${sweep.model} on ${sweep.dataset || "digits"} · ` : "";
  const space = Object.entries(sweep.space).map(([k, v]) => `${k}=${v}`).join(" ");
  const chart = el("div", { class: "chart short history" });
  const card = el("div", { class: "card sweep", "data-path": sweep.path },
    el("h2", {}, sweep.path, " ", el("span", { class: "muted" }, `study ${sweep.study}`)),
    el("p", {}, el("span", { class: "muted" }, what + space), " · ", el("span", { class: "counts" }, counts(sweep))),
    sweep.trials.length ? chart : null,
    sweep.trials.length ? trialsTable(sweep) : el("p", { class: "muted" }, "No trial has ended yet."),
    bestLine(sweep),
    sweep.plots.length ? el("p", {}, "Optuna's plots (open as files): ", sweep.plots.map((url) => el("a", { href: url, target: "_blank", rel: "noopener", class: "plot-link" }, url.split("/").pop())).flatMap((a) => [a, " "])) : null,
    sweep.report ? el("p", {}, el("a", { href: `/files/${sweep.path}/sweep.md`, target: "_blank", rel: "noopener" }, "sweep.md")) : null);
  return { card, chart };
}

async function refresh() {
  const found = await attempt($("error"), () => api("GET", "/api/sweeps"));
  if (found === undefined) return;
  if (!found.length) {
    $("sweeps").replaceChildren(el("p", { class: "muted" }, "No sweeps yet: start one from the Train page's sweep section."));
    return;
  }
  const cards = [];
  for (const sweep of found.slice().reverse()) {  // newest first: folder names end in their start time
    const text = JSON.stringify(sweep);
    const old = document.querySelector(`.sweep[data-path="${CSS.escape(sweep.path)}"]`);
    if (old && shown[sweep.path] === text) { cards.push(old); continue; }
    const { card, chart } = sweepCard(sweep);
    cards.push(card);
    shown[sweep.path] = text;
    if (sweep.trials.length) requestAnimationFrame(() => drawHistory(chart, sweep));
  }
  $("sweeps").replaceChildren(...cards);
}

async function poll() {
  await refresh();
  setTimeout(poll, POLL_MS);
}
poll();
