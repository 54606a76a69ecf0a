import { $, api, attempt, el, fmt, followJob, showError, table } from "/static/lab.js";
import { phaseLines, plotLossAccuracy } from "/static/plots.js";
import { setupChoosing } from "/static/choosing.js";

let source = null;
let job = null;
const ENDED = ["finished", "failed", "stopped"];
const options = { fields: [], datasets: [], defaults: {} };  // the form's fields and recipes, from /api/options

// What an empty field means for the chosen dataset: its recipe value, the option's default, or "auto".
function defaultOf(field) {
  const dataset = $("f-dataset") ? $("f-dataset").value : "digits";
  const recipe = options.defaults[dataset] || options.defaults["*"];
  if (field.name in recipe) return recipe[field.name];
  return field.default;
}

function shownDefault(field) {
  const value = defaultOf(field);
  if (value === null || value === undefined) return "auto";
  if (field.kind === "bool") return value ? "on" : "off";
  return String(value);
}

function fieldInput(field) {
  const name = field.name;
  const attrs = { name, id: `f-${name}`, oninput: () => clearFieldError(name) };
  let input;
  if (name === "dataset") {
    input = el("select", attrs, options.datasets.map((d) => el("option", { value: d }, d)));
  } else if (field.kind === "bool") {
    input = el("select", attrs, el("option", { value: "" }, ""), el("option", { value: "true" }, "on"), el("option", { value: "false" }, "off"));
  } else if (field.choices.length) {
    input = el("select", attrs, el("option", { value: "" }, ""), field.choices.map((c) => el("option", { value: c }, c)));
  } else {
    input = el("input", { ...attrs, type: field.kind === "str" ? "text" : "number", step: field.kind === "float" ? "any" : "1" });
  }
  return el("label", { title: field.help }, el("span", {}, field.label), input, el("span", { class: "field-error", id: `e-${name}`, hidden: true }));
}

// Placeholders (and the empty choice of a select) say the default that applies to the dataset now chosen.
function showDefaults() {
  for (const field of options.fields) {
    if (field.name === "dataset") continue;
    const input = $(`f-${field.name}`);
    if (input.tagName === "SELECT") input.options[0].textContent = `default (${shownDefault(field)})`;
    else input.placeholder = field.name === "time_budget" ? "none, or 10m" : shownDefault(field);
  }
}

function formOptions(form) {
  const chosen = { model: form.model.value.trim() };
  for (const field of options.fields) {
    const value = form.elements[field.name].value.trim();
    if (value === "") continue;
    chosen[field.name] = field.kind === "bool" ? value === "true" : field.kind === "str" ? value : Number(value);
  }
  return chosen;
}

function clearFieldError(name) {
  const note = $(`e-${name}`);
  if (note) { note.hidden = true; note.textContent = ""; }
  const input = name === "model" ? $("model") : $(`f-${name}`);
  if (input) input.classList.remove("invalid");
}

// A refusal naming a field is shown at that field (its fold opened); any other beside the Start button.
function showFormError(error) {
  const note = error.field && $(`e-${error.field}`);
  if (!note) { showError($("form-error"), error); return; }
  note.textContent = error.message;
  note.hidden = false;
  const input = error.field === "model" ? $("model") : $(`f-${error.field}`);
  input.classList.add("invalid");
  const fold = note.closest("details");
  if (fold) fold.open = true;
  input.focus();
}

function clearFormErrors() {
  showError($("form-error"));
  for (const field of [{ name: "model" }, ...options.fields]) clearFieldError(field.name);
}

function drawCurve(view) {
  const steps = view.progress.steps;
  const epochs = view.progress.epochs;
  $("curve").hidden = !steps.length;  // no empty chart before the first step
  if (!steps.length) return;
  const traces = [
    { x: steps.map((p) => p[0]), y: steps.map((p) => p[1]), name: "train loss", mode: "lines+markers", marker: { size: 4 } },
    { x: steps.map((p) => p[0]), y: steps.map((p) => p[2]), name: "train accuracy", yaxis: "y2", mode: "lines", line: { dash: "dot" } },
  ];
  const perEpoch = view.progress.latest.steps || (steps.length ? steps[steps.length - 1][0] / Math.max(1, epochs.length) : 1);
  if (epochs.length) traces.push({ x: epochs.map((e) => e.epoch * perEpoch), y: epochs.map((e) => e.val_accuracy), name: "val accuracy", yaxis: "y2", mode: "markers+lines", marker: { size: 9 } });
  // A fine-tuning job's next phase begins at the step that ends the last epoch of the phase before.
  plotLossAccuracy("curve", traces, { title: { text: "step" } }, phaseLines(view.progress.phase_marks, (mark) => mark.after_epoch * perEpoch));
  $("curve").dataset.points = String(steps.length);
}

function resultText(view) {
  const results = view.results;
  if (!results || results.test_accuracy === null || results.test_accuracy === undefined) return "";
  return `test accuracy ${fmt.pct(results.test_accuracy)} · best val accuracy ${fmt.pct(results.best_val_accuracy)}`;
}

function showJob(view) {
  job = view;
  $("job-title").textContent = `${view.label} · ${view.run}`;
  const state = view.interrupted ? "interrupted" : view.cancelled ? "cancelled" : view.state;
  $("job-state").textContent = state;
  $("job-state").className = `state ${view.state}`;
  const now = view.progress.latest;
  $("job-stats").textContent = now.epoch ? `epoch ${now.epoch}/${now.epochs}, step ${now.step}/${now.steps} · loss ${fmt.num(now.loss)} · accuracy ${fmt.pct(now.accuracy)} · ${fmt.int(Math.round(now.images_per_second))} images/s` + (now.eta_seconds !== undefined ? ` · ETA ${fmt.secs(now.eta_seconds)}` : "") : "";
  $("job-result").textContent = resultText(view);
  $("stop").disabled = !(view.state === "running" || view.state === "queued");
  $("resume").disabled = !view.resumable;
  $("run-link").hidden = false;
  $("run-link").href = `/runs/${view.run}`;
  $("log").hidden = !view.log.length;  // no black box before the job says anything
  $("log").textContent = view.log.join("\n");
  drawCurve(view);
}

// Back to "no job": nothing stale from an earlier job is left looking like the outcome of the last Start.
function resetJob() {
  if (source) source.close();
  source = null;
  job = null;
  $("job-title").textContent = "none yet";
  for (const id of ["job-state", "job-stats", "job-result", "log"]) $(id).textContent = "";
  $("stop").disabled = $("resume").disabled = true;
  $("run-link").hidden = $("log").hidden = $("curve").hidden = true;
  $("curve").dataset.points = "0";
  history.replaceState(null, "", "/train");
}

function follow(id) {
  if (source) source.close();
  history.replaceState(null, "", `/train?job=${encodeURIComponent(id)}`);
  source = followJob(id, (view) => { showJob(view); if (ENDED.includes(view.state)) listJobs(); });
}

async function cancel(event, id) {
  event.stopPropagation();  // the row's click would follow the job
  event.target.disabled = true;
  await attempt($("jobs-error"), () => api("POST", `/api/jobs/${encodeURIComponent(id)}/stop`));
  listJobs();
}

async function listJobs() {
  const jobs = await api("GET", "/api/jobs");
  const action = (j) => (ENDED.includes(j.state) ? "" : el("button", { class: "secondary cancel", "data-job": j.id, onclick: (e) => cancel(e, j.id) }, "Cancel"));
  $("jobs").replaceChildren(jobs.length ? table([
    ["job", (j) => j.id], ["what", (j) => j.label], ["run", (j) => j.run],
    ["state", (j) => (j.interrupted ? "interrupted" : j.cancelled ? "cancelled" : j.state)],
    ["test accuracy", (j) => (j.results && j.results.test_accuracy !== null ? fmt.pct(j.results.test_accuracy) : ""), "num"],
    ["", action],
  ], jobs.slice().reverse(), (j) => follow(j.id)) : el("p", { class: "muted" }, "No jobs."));
  $("clear").disabled = !jobs.some((j) => ENDED.includes(j.state));
}

async function clearFinished() {
  await attempt($("jobs-error"), () => api("POST", "/api/jobs/clear"));
  if (job && ENDED.includes(job.state)) resetJob();
  listJobs();
}

async function start(event) {
  event.preventDefault();
  clearFormErrors();
  try {
    const created = await api("POST", "/api/jobs", formOptions(event.target));
    follow(created.id);
    listJobs();
  } catch (error) { resetJob(); showFormError(error); }
}

async function main() {
  const [models, given, own] = await Promise.all([api("GET", "/api/models"), api("GET", "/api/options"), api("GET", "/api/networks")]);
  Object.assign(options, { fields: given.fields, datasets: given.datasets, defaults: given.defaults });
  // Suggestions, not a fence: the field also takes a layer spec. Your --models networks first, then the zoo.
  const names = [...own.files.flatMap((f) => f.entries), ...models.map((m) => m.name)];
  $("model-list").replaceChildren(...names.map((name) => el("option", { value: name })));
  const asked = new URLSearchParams(location.search).get("model");  // the Design page's "Train this"
  if (asked) $("model").value = asked;
  $("model").addEventListener("input", () => clearFieldError("model"));
  $("main-fields").replaceChildren(...options.fields.filter((f) => f.main).map(fieldInput));
  $("more-fields").replaceChildren(...options.fields.filter((f) => !f.main).map(fieldInput));
  $("f-dataset").addEventListener("change", showDefaults);
  showDefaults();
  $("train-form").addEventListener("submit", start);
  $("stop").addEventListener("click", () => attempt($("form-error"), () => api("POST", `/api/jobs/${job.id}/stop`)));
  $("resume").addEventListener("click", () => attempt($("form-error"), async () => {
    const created = await api("POST", "/api/jobs", { resume: job.run });
    follow(created.id);
    listJobs();
  }));
  $("clear").addEventListener("click", clearFinished);
  setupChoosing({ form: $("train-form"), fields: options.fields, formOptions, showFormError, clearFormErrors, clearFieldError, listJobs });
  const wanted = new URLSearchParams(location.search).get("job");
  if (wanted) follow(wanted);
  listJobs();
}
main();
