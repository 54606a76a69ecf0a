"use strict";
let source = null;
let job = null;

function fieldInput(field) {
  const name = field.name;
  let input;
  if (field.name === "dataset") {
    input = el("select", { name, id: `f-${name}` }, window.datasets.map((d) => el("option", { value: d }, d)));
  } else if (field.kind === "bool") {
    const shown = field.default === null ? "dataset's default" : `default (${field.default ? "on" : "off"})`;
    input = el("select", { name, id: `f-${name}` }, el("option", { value: "" }, shown), el("option", { value: "true" }, "on"), el("option", { value: "false" }, "off"));
  } else if (field.choices.length) {
    const shown = field.default === null ? "dataset's default" : `${field.default} (default)`;
    input = el("select", { name, id: `f-${name}` }, el("option", { value: "" }, shown), field.choices.map((c) => el("option", { value: c }, c)));
  } else {
    const placeholder = field.default === null ? "dataset's default" : String(field.default);
    input = el("input", { name, id: `f-${name}`, type: field.kind === "str" ? "text" : "number", step: field.kind === "float" ? "any" : "1", placeholder });
  }
  return el("label", { title: field.help }, el("span", {}, field.name.replaceAll("_", " ")), input);
}

function formOptions(form) {
  const options = { model: form.model.value };
  for (const field of window.fields) {
    const value = form.elements[field.name].value.trim();
    if (value === "") continue;
    options[field.name] = field.kind === "bool" ? value === "true" : field.kind === "str" ? value : Number(value);
  }
  return options;
}

function drawCurve(view) {
  const steps = view.progress.steps;
  const epochs = view.progress.epochs;
  const traces = [
    { x: steps.map((p) => p[0]), y: steps.map((p) => p[1]), name: "train loss", mode: "lines+markers", marker: { size: 4 } },
    { x: steps.map((p) => p[0]), y: steps.map((p) => p[2]), name: "train accuracy", yaxis: "y2", mode: "lines", line: { dash: "dot" } },
  ];
  const perEpoch = view.progress.latest.steps || (steps.length ? steps[steps.length - 1][0] / Math.max(1, epochs.length) : 1);
  if (epochs.length) traces.push({ x: epochs.map((e) => e.epoch * perEpoch), y: epochs.map((e) => e.val_accuracy), name: "val accuracy", yaxis: "y2", mode: "markers+lines", marker: { size: 9 } });
  Plotly.react("curve", traces, { margin: { t: 10, r: 50 }, xaxis: { title: { text: "step" }, automargin: true }, yaxis: { title: { text: "loss" } },
    yaxis2: { title: { text: "accuracy" }, overlaying: "y", side: "right", range: [0, 1], tickformat: ".0%", dtick: 0.25, showgrid: false }, legend: LEGEND_BELOW }, PLOT_CONFIG);
  $("curve").dataset.points = String(steps.length);
}

function showJob(view) {
  job = view;
  $("job-title").textContent = `${view.label} · ${view.run}`;
  const state = view.interrupted ? "interrupted" : view.state;
  $("job-state").textContent = state;
  $("job-state").className = `state ${view.state}`;
  const now = view.progress.latest;
  $("job-stats").textContent = now.epoch ? `epoch ${now.epoch}/${now.epochs}, step ${now.step}/${now.steps} · loss ${fmt.num(now.loss)} · accuracy ${fmt.pct(now.accuracy)} · ${fmt.int(Math.round(now.images_per_second))} images/s` + (now.eta_seconds !== undefined ? ` · ETA ${fmt.secs(now.eta_seconds)}` : "") : "";
  $("stop").disabled = !(view.state === "running" || view.state === "queued");
  $("resume").disabled = !view.resumable;
  $("run-link").hidden = false;
  $("run-link").href = `/runs/${view.run}`;
  $("log").textContent = view.log.join("\n");
  drawCurve(view);
}

function follow(id) {
  if (source) source.close();
  history.replaceState(null, "", `/train?job=${encodeURIComponent(id)}`);
  source = followJob(id, (view) => { showJob(view); if (["finished", "failed", "stopped"].includes(view.state)) listJobs(); });
}

async function listJobs() {
  const jobs = await api("GET", "/api/jobs");
  $("jobs").replaceChildren(table([
    ["job", (j) => j.id], ["what", (j) => j.label], ["run", (j) => j.run],
    ["state", (j) => (j.interrupted ? "interrupted" : j.state)],
  ], jobs.slice().reverse(), (j) => follow(j.id)));
}

async function start(event) {
  event.preventDefault();
  showError($("form-error"));
  try {
    const created = await api("POST", "/api/jobs", formOptions(event.target));
    follow(created.id);
    listJobs();
  } catch (error) { showError($("form-error"), error); }
}

async function main() {
  const [models, options] = await Promise.all([api("GET", "/api/models"), api("GET", "/api/options")]);
  window.fields = options.fields;
  window.datasets = options.datasets;
  $("model").replaceChildren(...models.map((m) => el("option", { value: m.name, selected: m.name === "lenet5" }, m.name)));
  $("main-fields").replaceChildren(...options.fields.filter((f) => f.main).map(fieldInput));
  $("more-fields").replaceChildren(...options.fields.filter((f) => !f.main).map(fieldInput));
  $("train-form").addEventListener("submit", start);
  $("stop").addEventListener("click", async () => { try { await api("POST", `/api/jobs/${job.id}/stop`); } catch (error) { showError($("form-error"), error); } });
  $("resume").addEventListener("click", async () => {
    try { const created = await api("POST", "/api/jobs", { resume: job.run }); follow(created.id); listJobs(); } catch (error) { showError($("form-error"), error); }
  });
  const wanted = new URLSearchParams(location.search).get("job");
  if (wanted) follow(wanted);
  listJobs();
}
main();
