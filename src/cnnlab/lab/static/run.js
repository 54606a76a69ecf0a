import { $, api, attempt, el, fmt, table } from "/static/lab.js";
import { PLOT_CONFIG, phaseLines, plotLossAccuracy, plotText } from "/static/plots.js";

const RUN = $("run-name").dataset.run;  // from the page: the CSP allows no inline script

// A config value as text: strings bare, lists "a, b", booleans yes/no, null "–", objects "key: value, ...".
function shown(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (Array.isArray(value)) return value.length ? value.map(shown).join(", ") : "–";
  if (typeof value === "object") {
    const entries = Object.entries(value);
    return entries.length ? entries.map(([k, v]) => `${k}: ${shown(v)}`).join(", ") : "–";
  }
  return String(value);
}

// The downloads list shows each file once, however often Export is pressed.
function addDownload(file, href) {
  if ([...$("downloads").querySelectorAll("a")].some((a) => a.getAttribute("download") === file)) return;
  $("downloads").append(el("a", { href, download: file }, file));
}

function showEvaluation(result) {
  $("evaluation").hidden = false;
  const names = Object.keys(result.per_class_accuracy);
  Plotly.react("per-class", [{ type: "bar", x: names.map(plotText), y: names.map((n) => result.per_class_accuracy[n]) }],
    { margin: { t: 10 }, xaxis: { type: "category", title: { text: "class" } }, yaxis: { range: [0, 1], title: { text: "test accuracy" }, tickformat: ".0%" } }, PLOT_CONFIG);
  const stamp = Date.now();
  $("confusion").src = `/files/${RUN}/confusion.png?${stamp}`;
  if (result.misclassified_png) $("misclassified").src = `/files/${RUN}/misclassified.png?${stamp}`;
  else $("misclassified").replaceWith(el("p", {}, "none: every test image is right"));
}

// A fine-tuned run's finetune.json: where it started (a link where that run is under the runs folder) and how.
function finetuneFacts(record) {
  if (!record) return [];
  const source = record.source_run ? el("a", { id: "finetune-source", href: `/runs/${encodeURI(record.source_run)}` }, record.source_run) : record.source;
  const facts = [["fine-tuned from", source], ["head", record.head], ["phases", record.phases && record.phases.split(",").join(", ")],
    ["freeze", record.freeze], ["bn stats", record.bn_stats], ["trainable params", fmt.int(record.trainable_params)]];
  const rates = record.head_lr !== null && record.head_lr !== undefined;  // a phased run's phases set them instead
  if (rates) facts.push(["learning rates", `head ${fmt.read(record.head_lr)}, backbone ${fmt.read(record.backbone_lr)}`]);
  if (record.lora_rank) facts.push(["LoRA rank", String(record.lora_rank)]);
  return facts;
}

async function main() {
  const run = await api("GET", `/api/runs/${RUN}`);
  const results = run.results || {};
  const facts = [["model", run.config.model], ["dataset", run.config.dataset], ["status", results.status || "running or not started"],
    ["test accuracy", fmt.pct(results.test_accuracy)], ["best val accuracy", fmt.pct(results.best_val_accuracy)],
    ["params", fmt.int(results.params)], ["train seconds", fmt.num(results.train_seconds, 1)], ["device", results.device],
    ...finetuneFacts(run.finetune)];
  $("results").replaceChildren(table([["", (f) => f[0]], ["", (f) => f[1] ?? "–", "wrap"]], facts));
  $("downloads").replaceChildren();
  for (const f of run.files.filter((f) => /\.(safetensors|onnx|pt|csv|json)$/.test(f))) addDownload(f, `/files/${RUN}/${f}`);
  const m = run.metrics;
  plotLossAccuracy("curves", [
    { x: m.map((r) => r.epoch), y: m.map((r) => r.train_loss), name: "train loss" },
    { x: m.map((r) => r.epoch), y: m.map((r) => r.val_loss), name: "val loss" },
    { x: m.map((r) => r.epoch), y: m.map((r) => r.train_accuracy), name: "train accuracy", yaxis: "y2", line: { dash: "dot" } },
    { x: m.map((r) => r.epoch), y: m.map((r) => r.val_accuracy), name: "val accuracy", yaxis: "y2", line: { dash: "dot" } },
  ], { title: { text: "epoch" }, dtick: 1 }, phaseLines(run.phase_marks, (mark) => mark.x));
  const config = Object.entries(run.config).filter(([k]) => !["data", "versions"].includes(k));
  $("config").replaceChildren(table([["option", (c) => c[0]], ["value", (c) => shown(c[1]), "wrap"]], config));
  if (run.evaluation) showEvaluation({ ...run.evaluation, misclassified_png: run.files.includes("misclassified.png") });
  const done = results.status === "completed";
  $("evaluate").disabled = $("export").disabled = !done;
  $("resume").hidden = done || !run.resumable;
}

async function act(button, work) {
  button.disabled = true;
  await attempt($("error"), work);
  button.disabled = false;
}

$("evaluate").addEventListener("click", () => act($("evaluate"), async () => showEvaluation(await api("POST", `/api/runs/${RUN}/evaluate`))));
$("export").addEventListener("click", () => act($("export"), async () => {
  const result = await api("POST", `/api/runs/${RUN}/export`);
  addDownload(result.file.split("/").pop(), result.file);
}));
$("resume").addEventListener("click", () => act($("resume"), async () => {
  const created = await api("POST", "/api/jobs", { resume: RUN });
  location.href = `/train?job=${encodeURIComponent(created.id)}`;
}));
// "Fine-tune this run": the form's fields come from the option declarations (GET /api/finetune/options).
async function finetuneForm() {
  const { fields, datasets } = await api("GET", "/api/finetune/options");
  $("finetune-fields").replaceChildren(...fields.map((f) => {
    const choices = f.name === "dataset" ? datasets : f.choices;
    const input = choices.length
      ? el("select", { name: f.name }, ...choices.map((c) => el("option", { value: c }, c)))
      : el("input", { name: f.name, type: f.kind === "int" ? "number" : "text", placeholder: f.default ?? "" });
    return el("label", { title: f.help || "" }, `${f.label} `, input);
  }));
  $("finetune-card").hidden = false;
}

$("finetune-form").addEventListener("submit", (event) => {
  event.preventDefault();
  act($("finetune"), async () => {
    const body = { finetune: RUN };
    for (const input of $("finetune-fields").querySelectorAll("input, select")) {
      if (input.value !== "") body[input.name] = input.type === "number" ? Number(input.value) : input.value;
    }
    const created = await api("POST", "/api/jobs", body);
    location.href = `/train?job=${encodeURIComponent(created.id)}`;
  });
});
attempt($("error"), main);
attempt($("error"), finetuneForm);
