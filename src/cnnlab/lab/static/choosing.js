// The Train page's hyperparameter tools, an ES module train.js sets up: "find lr" (an lr range test run as a job;
// its curve drawn and its suggestion put in the lr field) and the sweep section (a `cnnlab sweep` job over the
// form's model and options, searching the rows' parameters).
import { $, api, el, followJob, showError } from "/static/lab.js";
import { LEGEND_BELOW, PLOT_CONFIG } from "/static/plots.js";

const ENDED = ["finished", "failed", "stopped"];
let page = null;  // what train.js hands over: the form, its fields and its error helpers
let lrSource = null;

// ------------------------------------------------------------------------------------------------- find lr
function drawLrCurve(found) {
  const finite = found.smoothed.filter((v) => v !== null && Number.isFinite(v));
  const low = Math.min(...finite);
  const high = Math.min(Math.max(...finite), found.diverge_factor * low);  // the diverging tail would flatten the rest
  const at = found.lrs.indexOf(found.suggestion);
  const traces = [
    { x: found.lrs, y: found.losses, mode: "lines", name: "loss", line: { color: "#bab0ac", width: 1 } },
    { x: found.lrs, y: found.smoothed, mode: "lines", name: `smoothed (EMA, beta ${found.beta})`, line: { color: "#4e79a7", width: 2 } },
    { x: [found.suggestion], y: [at >= 0 ? found.smoothed[at] : low], mode: "markers", name: `suggestion ${found.suggestion.toPrecision(3)} (${found.rule})`, marker: { size: 12, color: "#e15759", symbol: "diamond" } },
  ];
  const layout = {
    margin: { t: 10, r: 20 }, legend: LEGEND_BELOW,
    xaxis: { type: "log", title: { text: "learning rate" }, automargin: true, exponentformat: "e" },
    yaxis: { title: { text: "training loss" }, range: [low * 0.9, high * 1.05], automargin: true },
    shapes: [{ type: "line", xref: "x", yref: "paper", x0: found.suggestion, x1: found.suggestion, y0: 0, y1: 1, line: { color: "#e15759", dash: "dash" } }],
  };
  Plotly.react("lr-curve", traces, layout, PLOT_CONFIG);
  $("lr-curve").dataset.points = String(found.lrs.length);
}

async function showLrResult(view) {
  $("lr-state").textContent = view.state;
  $("lr-state").className = `state ${view.state}`;
  if (!ENDED.includes(view.state)) { $("lr-note").textContent = "running the range test…"; return; }
  if (view.state !== "finished") { $("lr-note").textContent = view.log.slice(-1).join("") || "the range test did not finish"; return; }
  try {
    const found = await api("GET", `/api/lr-find/${view.run}`);
    drawLrCurve(found);
    $("f-lr").value = String(found.suggestion);
    page.clearFieldError("lr");
    const ended = found.diverged ? "the loss diverged" : "the range ended";
    $("lr-note").textContent = `suggested lr ${found.suggestion.toPrecision(3)} (now in the lr field) · ${found.rule_text} · ${ended} after ${found.steps_run} steps`;
  } catch (error) { showError($("lr-note"), error); }
}

async function findLr() {
  page.clearFormErrors();
  let created;
  try {
    created = await api("POST", "/api/lr-find", page.formOptions(page.form));
  } catch (error) { page.showFormError(error); return; }
  $("lr-card").hidden = false;
  $("lr-title").textContent = created.run;
  $("lr-state").textContent = "queued";
  $("lr-note").textContent = "";
  if (lrSource) lrSource.close();
  lrSource = followJob(created.id, showLrResult);
  page.listJobs();
}

// ---------------------------------------------------------------------------------------------------- sweep
function searchable() {
  // the numeric fields (lr is typed as text on the form, "find" being a value too); a budget is not searched
  return page.fields.filter((f) => (f.kind === "int" || f.kind === "float" || f.name === "lr") && f.name !== "time_budget");
}

function sweepRow(chosen = {}) {
  const names = searchable().map((f) => el("option", { value: f.name, selected: f.name === chosen.name }, f.label));
  const clear = () => { row.classList.remove("invalid"); showError($("sweep-error")); };
  const row = el("div", { class: "sweep-row" },
    el("select", { class: "param-name", oninput: clear }, names),
    " from ", el("input", { class: "param-low", type: "number", step: "any", value: chosen.low, oninput: clear }),
    " to ", el("input", { class: "param-high", type: "number", step: "any", value: chosen.high, oninput: clear }),
    el("label", { class: "inline" }, el("input", { class: "param-log", type: "checkbox", checked: chosen.log }), " log"),
    " or choices ", el("input", { class: "param-choices", type: "text", placeholder: "32,64,128", oninput: clear }),
    " ", el("button", { type: "button", class: "secondary", onclick: () => row.remove() }, "remove"));
  return row;
}

function rowValue(row) {
  const name = row.querySelector(".param-name").value;
  const choices = row.querySelector(".param-choices").value.trim();
  if (choices) return { name, choices: choices.split(",").map((c) => Number(c.trim())) };
  const read = (cls) => { const text = row.querySelector(cls).value.trim(); return text === "" ? null : Number(text); };
  return { name, low: read(".param-low"), high: read(".param-high"), log: row.querySelector(".param-log").checked };
}

function sweepBody() {
  const rows = [...$("sweep-rows").children];
  const params = rows.map(rowValue);
  const searched = new Set(params.map((p) => p.name));
  const options = Object.fromEntries(Object.entries(page.formOptions(page.form)).filter(([k]) => !searched.has(k)));
  const trials = $("sweep-trials").value.trim();
  return { options, params, trials: trials === "" ? null : Number(trials), pruner: $("sweep-pruner").value };
}

function showSweepError(error) {
  showError($("sweep-error"), error);
  const match = /^param-(\d+)$/.exec(error.field || "");
  if (match) { const row = $("sweep-rows").children[Number(match[1])]; if (row) row.classList.add("invalid"); return; }
  if (error.field && $(`e-${error.field}`)) page.showFormError(error);  // a Train form field: shown there too
}

async function startSweep() {
  page.clearFormErrors();
  showError($("sweep-error"));
  $("sweep-link").hidden = true;
  try {
    const created = await api("POST", "/api/sweeps", sweepBody());
    $("sweep-link").hidden = false;
    $("sweep-link").textContent = `sweep ${created.run} started: follow it on the Sweeps page`;
    page.listJobs();
  } catch (error) { showSweepError(error); }
}

export function setupChoosing(given) {
  page = given;
  $("find-lr").addEventListener("click", findLr);
  $("sweep-rows").replaceChildren(sweepRow({ name: "lr", low: 0.001, high: 0.1, log: true }));
  $("sweep-add").addEventListener("click", () => $("sweep-rows").append(sweepRow({ name: "weight_decay" })));
  $("sweep-start").addEventListener("click", startSweep);
}
