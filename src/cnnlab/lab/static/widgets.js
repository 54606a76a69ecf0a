import { $, api, attempt, el, fmt, latest, table } from "/static/lab.js";
import { LEGEND_BELOW, PALETTE, PLOT_CONFIG } from "/static/plots.js";

const CONV_FIELDS = [["n", "input side", 32], ["c", "input channels", 3], ["k", "kernel", 3], ["s", "stride", 1], ["p", "padding", 1], ["d", "dilation", 1], ["out", "output channels", 16]];

async function conv() {
  const query = CONV_FIELDS.map(([name]) => `${name}=${encodeURIComponent($(`conv-${name}`).value)}`).join("&");
  await attempt($("conv-error"), async () => {
    const r = await latest("conv", api("GET", `/api/widgets/conv?${query}`));
    $("conv-result").textContent = `⌊(n + 2p − d(k−1) − 1)/s⌋ + 1 = ${r.formula_side}; measured output ${fmt.shape(r.output_shape)}, ` +
      `${fmt.int(r.params)} parameters, ${fmt.big(r.macs)} MACs, receptive field ${r.receptive_field}px`;
  }, () => { $("conv-result").textContent = ""; });
}

// The kernels experiment builds its convs without bias (c²k² weights each); summarize counts the layers built here,
// biases included, so the two tables' parameter counts differ by the biases.
function biasNote(c, pair) {
  const weights = c * c * 25;
  return el("p", { class: "muted" }, `Parameters here include each conv's ${fmt.int(c)} biases: the 5×5 conv is ${fmt.int(pair.a.params)} ` +
    `here, ${fmt.int(weights)} (c²·k², weights only) in the kernels experiment, which builds its convs without bias.`);
}

async function kernels() {
  await attempt($("kernel-error"), async () => {
    const r = await latest("kernels", api("GET", `/api/widgets/kernels?c=${$("k-c").value}&n=${$("k-n").value}`));
    $("kernels").replaceChildren(table([
      ["comparison", (p) => p.name, "wrap"], ["B saves", (p) => fmt.pct(p.saving), "num"],
      ["params A", (p) => fmt.int(p.a.params), "num"], ["params B", (p) => fmt.int(p.b.params), "num"],
      ["MACs A", (p) => fmt.big(p.a.macs), "num"], ["MACs B", (p) => fmt.big(p.b.macs), "num"],
      ["receptive field", (p) => `${p.a.receptive_field ?? "–"} / ${p.b.receptive_field ?? "–"}`, "num"],
    ], r.pairs), biasNote(Number($("k-c").value), r.pairs[0]));
  }, () => $("kernels").replaceChildren());
}

function traceTable(node, trace) {
  // A trace's rows as its own columns, wrapping in their cells; lists as comma-separated numbers.
  const cell = (v) => (Array.isArray(v) ? v.flat(Infinity).map(fmt.read).join(", ") : fmt.read(v));
  node.replaceChildren(el("p", { class: "muted" }, trace.title),
    table(trace.columns.map((c, i) => [c, (row) => cell(row[i]), "wrap"]), trace.rows),
    ...(trace.notes || []).map((n) => el("p", { class: "muted" }, n)));
}

function histogram(target, values, title, range) {
  Plotly.react(target, [{ type: "histogram", x: values, nbinsx: 16 }],
    { margin: { t: 30, b: 30 }, title: { text: title, font: { size: 13 } }, xaxis: { range } }, PLOT_CONFIG);
}

async function batchnorm() {
  const batch = $("bn-batch").value;
  $("bn-batch-label").textContent = batch;
  await attempt($("bn-error"), async () => {
    const r = await latest("batchnorm", api("GET", `/api/widgets/batchnorm?batch=${batch}`));
    const before = r.data.batches[r.data.batches.length - 1].flat(Infinity);
    const train = r.data.y_train.flat(Infinity), evaluated = r.data.y_eval.flat(Infinity);
    const all = before.concat(train, evaluated);
    const range = [Math.min(...all) - 0.5, Math.max(...all) + 0.5];
    histogram("bn-before", before, `batch ${batch}: x before normalisation`, range);
    histogram("bn-train", train, "y in train mode (batch statistics)", range);
    histogram("bn-eval", evaluated, "y in eval mode (running statistics)", range);
    traceTable($("bn-table"), r);
  }, () => {
    for (const id of ["bn-before", "bn-train", "bn-eval"]) Plotly.purge(id);
    $("bn-table").replaceChildren();
  });
}

// The running mean of the first channels after each real batch, against the dataset's own (dotted), and the worst
// channel's gap per batch; the same numbers per batch in a table. One request per click: it loads a dataset.
async function runningStats() {
  const query = ["model", "dataset", "momentum", "batches"].map((k) => `${k}=${encodeURIComponent($(`rs-${k}`).value)}`).join("&");
  $("rs-state").textContent = "computing…";
  await attempt($("rs-error"), async () => {
    const r = await latest("running_stats", api("GET", `/api/widgets/running_stats?${query}`));
    const d = r.data, channels = Math.min(3, d.dataset_mean.length);
    const curves = [];
    for (let c = 0; c < channels; c++) {
      const color = PALETTE[c % PALETTE.length];
      curves.push({ x: d.batch, y: d.running_mean.map((row) => row[c]), name: `running mean, channel ${c}`, mode: "lines", line: { color } });
      curves.push({ x: [1, d.batch.length], y: [d.dataset_mean[c], d.dataset_mean[c]], name: `dataset mean, channel ${c}`, mode: "lines", line: { color, dash: "dot" } });
    }
    const layout = (title, type) => ({ margin: { t: 30 }, title: { text: title, font: { size: 13 } }, xaxis: { title: { text: "batch" } }, yaxis: { type }, legend: LEGEND_BELOW });
    Plotly.react("rs-mean", curves, layout(r.title), PLOT_CONFIG);
    Plotly.react("rs-gap", [{ x: d.batch, y: d.mean_gap, name: "mean", mode: "lines" }, { x: d.batch, y: d.var_gap, name: "variance", mode: "lines" }],
      layout("|running − dataset|, worst channel", "log"), PLOT_CONFIG);
    const rows = d.batch.map((b, i) => ({ b, mean: d.running_mean[i][0], var: d.running_var[i][0], gap: d.mean_gap[i], vgap: d.var_gap[i] }));
    $("rs-table").replaceChildren(table([
      ["batch", (x) => x.b, "num"], ["running mean, ch 0", (x) => fmt.read(x.mean), "num"], ["dataset mean, ch 0", () => fmt.read(d.dataset_mean[0]), "num"],
      ["running var, ch 0", (x) => fmt.read(x.var), "num"], ["dataset var, ch 0", () => fmt.read(d.dataset_var[0]), "num"],
      ["|mean gap|, worst ch", (x) => fmt.read(x.gap), "num"], ["|var gap|, worst ch", (x) => fmt.read(x.vgap), "num"],
    ], rows), ...r.notes.map((n) => el("p", { class: "muted" }, n)));
    $("rs-state").textContent = "";
  }, () => {
    for (const id of ["rs-mean", "rs-gap"]) Plotly.purge(id);
    $("rs-table").replaceChildren();
    $("rs-state").textContent = "";
  });
}

async function residual() {
  const x = $("res-x").value;
  $("res-x-label").textContent = fmt.read(Number(x));
  await attempt($("res-error"), async () => {
    const r = await latest("residual", api("GET", `/api/widgets/residual?x=${x}&depth=${$("res-depth").value}`));
    const d = r.data, mark = { x: [Number(x), Number(x)], mode: "lines", line: { color: "#999", dash: "dot" }, showlegend: false };
    const layout = (title) => ({ margin: { t: 30 }, title: { text: title, font: { size: 13 } }, xaxis: { title: { text: "x" }, automargin: true }, legend: LEGEND_BELOW });
    // P(x) = F(x) wherever F(x) > 0: P is drawn dashed over a wider F so both stay visible where they meet.
    const line = [{ width: 5 }, { width: 2.5 }, { width: 2.5, dash: "dash" }];
    const curves = (names) => names.map(([k, name], i) => ({ x: d.x, y: d[k], name, mode: "lines", line: { ...line[i], color: PALETTE[i] } }));
    const values = curves([["f", "F(x)"], ["h", "H(x) = ReLU(F(x) + x)"], ["plain", "P(x) = ReLU(F(x))"]]);
    const grads = curves([["dF", "dF/dx"], ["dH", "dH/dx (through the skip)"], ["dP", "dP/dx (plain)"]]);
    const span = (series) => { const ys = series.flatMap((s) => s.y); return [Math.min(...ys), Math.max(...ys)]; };
    Plotly.react("res-values", [...values, { ...mark, y: span(values) }], layout("outputs"), PLOT_CONFIG);
    Plotly.react("res-grads", [...grads, { ...mark, y: span(grads) }], layout("gradients"), PLOT_CONFIG);
    traceTable($("res-table"), r);
  }, () => {
    for (const id of ["res-values", "res-grads"]) Plotly.purge(id);
    $("res-table").replaceChildren();
  });
}

function main() {
  $("conv-form").replaceChildren(...CONV_FIELDS.map(([name, label, value]) =>
    el("label", {}, el("span", {}, label), el("input", { type: "number", id: `conv-${name}`, value, min: 0, oninput: conv }))));
  for (const id of ["k-c", "k-n"]) $(id).addEventListener("input", kernels);
  $("bn-batch").addEventListener("input", batchnorm);
  $("res-x").addEventListener("input", residual);
  $("rs-run").addEventListener("click", runningStats);
  $("res-depth").addEventListener("input", residual);
  conv(); kernels(); batchnorm(); residual();
}
main();
