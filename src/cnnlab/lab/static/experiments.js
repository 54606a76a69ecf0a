import { $, api, attempt, el, followJob, table } from "/static/lab.js";

let source = null;

async function showResult(name) {
  const html = await api("GET", `/api/experiments/results?name=${encodeURIComponent(name)}`);
  // The server renders results.md with markdown-it, raw HTML escaped and images confined to the experiment's folder.
  const doc = new DOMParser().parseFromString(html, "text/html");
  $("result").replaceChildren(...doc.body.childNodes);
  $("result-card").hidden = false;
}

// The form's fields: one per option of `cnnlab experiment` a job may set, as /api/experiments declares them.
function fieldInput(field, experiments) {
  const attrs = { name: field.name, id: `f-${field.name}` };
  let input;
  if (field.kind === "bool") {
    input = el("select", attrs, el("option", { value: "" }, `default (${field.default ? "on" : "off"})`),
      el("option", { value: "true" }, "on"), el("option", { value: "false" }, "off"));
  } else if (field.choices.length) {
    input = el("select", attrs, el("option", { value: "" }, ""), field.choices.map((c) => el("option", { value: c }, c)));
  } else {
    const placeholder = field.default === null || field.default === undefined ? "" : String(field.default);
    input = el("input", { ...attrs, placeholder, type: field.kind === "str" ? "text" : "number", step: field.kind === "float" ? "any" : "1" });
  }
  const takers = experiments.filter((e) => e.accepts.includes(field.name)).map((e) => e.name);
  const note = field.extra ? el("span", { class: "muted" }, ` (${takers.join(", ")} only)`) : null;
  return el("label", { title: `${field.flag}: ${field.help}` }, el("span", {}, field.label), input, note);
}

// The body of a job: the experiment and each field given (an empty one keeps the option's default). Values go to
// the lab as typed; a wrong one (0 seeds, "x" epochs) comes back as the lab's one-line refusal.
function jobBody(name) {
  const body = { experiment: name };
  for (const field of fields) {
    const value = $(`f-${field.name}`).value.trim();
    if (value === "") continue;
    body[field.name] = field.kind === "bool" ? value === "true" : field.kind === "str" ? value : Number(value);
  }
  return body;
}

let fields = [];

async function run(name) {
  await attempt($("error"), async () => {
    const body = jobBody(name);
    const created = await api("POST", "/api/jobs", body);
    if (source) source.close();
    source = followJob(created.id, (view) => {
      $("job-title").textContent = `${view.label} → ${view.run}`;
      $("job-state").textContent = view.interrupted ? "interrupted" : view.state;
      $("job-state").className = `state ${view.state}`;
      $("log").textContent = view.log.join("\n");
      if (view.state === "finished") { listPast(); showResult(view.run); }
    });
  });
}

async function listPast() {
  const data = await api("GET", "/api/experiments");
  $("past").replaceChildren(data.results.length ? table([["folder", (r) => r.name], ["title", (r) => r.title, "wrap"]], data.results, (r) => showResult(r.name))
    : el("p", { class: "muted" }, "none yet"));
  return data;
}

async function main() {
  const data = await listPast();
  $("list").replaceChildren(table([
    ["experiment", (e) => e.name], ["what it shows", (e) => e.help, "wrap"],
    ["", (e) => el("button", { class: "secondary", onclick: () => run(e.name) }, "run")],
  ], data.experiments));
  fields = data.fields;
  $("experiment-form").replaceChildren(...fields.map((f) => fieldInput(f, data.experiments)));
}
main();
