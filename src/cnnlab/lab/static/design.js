// The Design page: a layer spec typed in (or a network picked from the lab's --models files), its layer table
// (shapes, parameters, MACs, receptive fields) after each keystroke from GET /api/summary, a refused spec's
// offending layer marked where it was typed, and "Train this": the Train form with this network as its model.
import { $, api, attempt, el, fmt, latest } from "/static/lab.js";
import { layerTable, stageDiagram } from "/static/layers.js";

const block = (c, s) => `res(conv ${c} k3 s${s} p1 b0; bn; relu; conv ${c} k3 p1 b0; bn); relu`;
const PRESETS = {
  "LeNet-5 (1998)": ["conv 6 k5; tanh; avgpool k2; conv 16 k5; tanh; avgpool k2; flatten; fc 120; tanh; fc 84; tanh; fc 10", "1x32x32"],
  "the Section-1 CNN": ["conv 16 k3 p1; relu; maxpool k2; conv 32 k3 p1; relu; maxpool k2; flatten; fc 128; relu; fc 10", "1x28x28"],
  "a small ResNet": [`conv 32 k3 p1 b0; bn; relu; 2*(${block(32, 1)}); ${block(64, 2)}; ${block(128, 2)}; gap; fc 10`, "1x28x28"],
  "NiN's head (conv 1x1, then GAP)": ["conv 96 k5 p2; relu; conv 96 k1; relu; maxpool k3 s2; conv 10 k1; gap", "3x32x32"],
  "an Inception block": ["cat(conv 64 k1 | conv 96 k1; relu; conv 128 k3 p1 | conv 16 k1; relu; conv 32 k5 p2 | maxpool k3 s1 p1; conv 32 k1)", "192x28x28"],
};

// The spec as typed, with the refused layer marked (text nodes only: nothing typed is parsed as HTML).
function markLayer(spec, layer) {
  const at = layer ? spec.indexOf(layer) : -1;
  $("marked").hidden = at < 0;
  if (at >= 0) $("marked").replaceChildren(spec.slice(0, at), el("mark", {}, layer), spec.slice(at + layer.length));
}

async function show() {
  const spec = $("spec").value;
  const query = `spec=${encodeURIComponent(spec)}&input=${encodeURIComponent($("input").value.trim())}`;
  $("train-this").disabled = true;  // until this text has a table: Train gets what the table shows
  await attempt($("error"), async () => {
    const summary = await latest("design", api("GET", `/api/summary?${query}`));
    markLayer(spec, null);
    $("stages").replaceChildren(...stageDiagram(summary));
    $("totals").textContent = `input ${fmt.shape(summary.input)}: ${fmt.int(summary.total_params)} parameters, ` +
      `${fmt.big(summary.total_macs)} MACs per image`;
    $("layers").replaceChildren(layerTable(summary));
    $("train-this").disabled = false;
  }, (error) => {  // the last good table would read as this spec's
    markLayer(spec, error.layer);
    for (const id of ["stages", "layers"]) $(id).replaceChildren();
    $("totals").textContent = "";
  });
}

function usePreset() {
  const [spec, input] = PRESETS[$("preset").value];
  $("spec").value = spec;
  $("input").value = input;
  $("network").value = "";
  show();
}

function useNetwork() {
  if (!$("network").value) return;
  $("spec").value = $("network").value;
  show();
}

// The networks of the files the lab was started with (cnnlab lab --models FILE.py); a file that cannot be
// imported says why beside the picker.
async function listNetworks() {
  const { files } = await api("GET", "/api/networks");
  const entries = files.flatMap((f) => f.entries);
  $("network-box").hidden = !files.length;
  $("network").replaceChildren(el("option", { value: "" }, entries.length ? "choose one" : "none found"),
    ...entries.map((entry) => el("option", { value: entry }, entry)));
  $("network-note").textContent = files.filter((f) => f.error).map((f) => f.error).join("; ");
}

$("preset").replaceChildren(...Object.keys(PRESETS).map((name) => el("option", { value: name }, name)));
$("preset").addEventListener("change", usePreset);
$("network").addEventListener("change", useNetwork);
$("spec").addEventListener("input", () => { if ($("network").value !== $("spec").value.trim()) $("network").value = ""; });
for (const id of ["spec", "input"]) $(id).addEventListener("input", show);
$("train-this").addEventListener("click", () => { location.href = `/train?model=${encodeURIComponent($("spec").value.trim())}`; });
attempt($("network-note"), listNetworks);
usePreset();
