import { $, api, attempt, el, fmt, showError } from "/static/lab.js";
import { PLOT_CONFIG, plotText } from "/static/plots.js";
import { layerTable } from "/static/layers.js";

let runs = [];

function setupPad() {
  const pad = $("pad");
  const ctx = pad.getContext("2d");
  const clear = () => { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, pad.width, pad.height); };
  clear();
  let drawing = false;
  const at = (e) => { const r = pad.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; };
  pad.addEventListener("pointerdown", (e) => { drawing = true; ctx.beginPath(); ctx.moveTo(...at(e)); document.querySelector("input[value=draw]").checked = true; updatePreview(); });
  pad.addEventListener("pointermove", (e) => {
    if (!drawing) return;
    ctx.lineWidth = 16; ctx.lineCap = "round"; ctx.strokeStyle = "#fff";
    ctx.lineTo(...at(e)); ctx.stroke();
  });
  for (const end of ["pointerup", "pointerleave"]) pad.addEventListener(end, () => { drawing = false; });
  $("clear").addEventListener("click", clear);
}

function figure(url, caption, alt, zoom) {
  return el("figure", {}, el("img", { src: url, alt: alt || caption, class: zoom ? "plot zoomable" : "plot", tabindex: zoom ? "0" : null }),
    el("figcaption", {}, caption));
}

// The chosen image before Predict: a test image (its class comes in the X-Class header) or the upload's file.
let previewUrl = null;
let previewTurn = 0;  // a slow answer for an old number must not replace a newer one

async function previewSource() {
  const source = document.querySelector("input[name=source]:checked").value;
  const index = $("test-index").value;
  if (source === "test" && $("run").value && /^\d+$/.test(index)) {
    const response = await fetch(`/api/test-image?run=${encodeURIComponent($("run").value)}&index=${index}`);
    if (!response.ok) throw new Error((await response.json()).error);
    return [URL.createObjectURL(await response.blob()), `test image ${index}: class '${response.headers.get("X-Class")}'`];
  }
  if (source === "upload" && $("upload").files.length) {
    const file = $("upload").files[0];
    return [URL.createObjectURL(file), `upload: ${file.name}`];
  }
  return [null, ""];
}

async function updatePreview() {
  const turn = ++previewTurn;
  let url = null, caption = "";
  try { [url, caption] = await previewSource(); } catch (error) { caption = String(error.message || error); }
  if (turn !== previewTurn) { if (url) URL.revokeObjectURL(url); return; }
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = url;
  if (url) $("preview").src = url; else $("preview").removeAttribute("src");
  $("preview").hidden = !url;
  $("preview-caption").textContent = caption;
  $("preview-box").hidden = !caption;
}

function openLightbox(image) {
  $("lightbox-image").src = image.src;
  $("lightbox-image").alt = image.alt;
  $("lightbox-caption").textContent = image.alt;
  $("lightbox").hidden = false;
}

function setupLightbox() {
  const zoom = (event) => {
    const image = event.target.closest("img.zoomable");
    if (image && (event.type === "click" || event.key === "Enter")) openLightbox(image);
  };
  for (const id of ["maps", "filters", "layer-view"]) { $(id).addEventListener("click", zoom); $(id).addEventListener("keydown", zoom); }
  $("lightbox").addEventListener("click", () => { $("lightbox").hidden = true; });
  document.addEventListener("keydown", (event) => { if (event.key === "Escape") $("lightbox").hidden = true; });
}

async function imageForm() {
  const form = new FormData();
  form.append("run", $("run").value);
  form.append("runtime", $("runtime").value);
  const source = document.querySelector("input[name=source]:checked").value;
  if ($("target").value) form.append("target", $("target").value);  // a class name: names are exact, indices shift
  if (source === "test") form.append("test_index", $("test-index").value);
  else if (source === "upload") {
    if (!$("upload").files.length) throw new Error("choose an image file first");
    form.append("image", $("upload").files[0]);
  } else {
    const blob = await new Promise((resolve) => $("pad").toBlob(resolve, "image/png"));
    form.append("image", blob, "drawing.png");
  }
  return form;
}

let barsWired = false;

function drawBars(result) {
  const top = result.top.slice().reverse();
  const colour = (t) => (t.class === result.target.class ? "#2458c6" : "#98a2b3");  // the class the overlays explain
  Plotly.react("bars", [{ type: "bar", orientation: "h", x: top.map((t) => t.probability), y: top.map((t) => plotText(t.class)), customdata: top.map((t) => t.class), marker: { color: top.map(colour) } }],
    { margin: { t: 10, l: 90 }, xaxis: { range: [0, 1], title: { text: "probability" }, tickformat: ".0%" }, yaxis: { type: "category" } }, PLOT_CONFIG);
  if (!barsWired) $("bars").on("plotly_click", (event) => chooseTarget(event.points[0].customdata));  // Plotly's own events, once drawn
  barsWired = true;
}

function showResult(result) {
  drawBars(result);
  const t = result.target;
  const rank = t.rank === 1 ? "top-1" : `rank ${t.rank}`;
  $("cam-label").textContent = `Grad-CAM for class '${t.class}' (${rank}, p = ${t.probability.toFixed(2)})`;
  $("truth").textContent = result.truth !== null ? `(true class: ${result.truth})` : "";
  $("runtime-used").textContent = `top classes computed in ${result.runtime} (${result.runtime_reason})`;
  $("overlays").replaceChildren(figure(result.input, "input"), figure(result.gradcam, `Grad-CAM: '${t.class}'`, "Grad-CAM"),
    figure(result.saliency, `saliency: '${t.class}'`, "saliency"));
  $("maps").replaceChildren(...result.feature_maps.map((m) => figure(m.url, `${m.layer} ${fmt.shape(m.shape)}`, null, true)));
  $("filters").replaceChildren(figure(result.filters.url, `${result.filters.layer}: ${fmt.shape(result.filters.shape)} kernels (mean over input channels)`, null, true));
}

let predicted = false;  // choosing another class recomputes the overlays once there is a prediction
let predictTurn = 0;  // two quick class choices: only the last answer is shown

async function predict() {
  const turn = ++predictTurn;
  showError($("error"));
  $("predict").disabled = true;
  try {
    const result = await api("POST", "/api/predict", await imageForm());
    if (turn === predictTurn) { showResult(result); predicted = true; if (chosenLayer) showLayer(chosenLayer); }
  } catch (error) { if (turn === predictTurn) showError($("error"), error); }
  if (turn === predictTurn) $("predict").disabled = false;
}

function chooseTarget(name) {
  $("target").value = name;
  if (predicted) predict();
  else if (chosenLayer) showLayer(chosenLayer);
}

// One layer of the run for the chosen image (POST /api/layer): its output, its kernels when it is a convolution,
// and Grad-CAM weighed at it when its output is maps; what a layer cannot show is said, not left blank.
let chosenLayer = null;
let layerTurn = 0;

async function showLayer(name) {
  const turn = ++layerTurn;
  chosenLayer = name;
  for (const row of document.querySelectorAll("#run-layers tbody tr")) row.classList.toggle("chosen", row.firstChild.textContent === name);
  $("layer-title").textContent = name;
  await attempt($("layer-error"), async () => {
    const form = await imageForm();
    form.append("layer", name);
    const shown = await api("POST", "/api/layer", form);
    if (turn !== layerTurn) return;
    const views = [figure(shown.maps, `${shown.layer} (${shown.kind}) output ${fmt.shape(shown.shape)}`, `output of ${shown.layer}`, true)];
    if (shown.filters) views.push(figure(shown.filters.url, `kernels ${fmt.shape(shown.filters.shape)} (mean over input channels)`, `kernels of ${shown.layer}`, true));
    if (shown.gradcam) views.push(figure(shown.gradcam, `Grad-CAM at ${shown.layer}: '${shown.target}'`, `Grad-CAM at ${shown.layer}`));
    $("layer-view").replaceChildren(...views);
    $("layer-notes").textContent = [shown.filters_note, shown.gradcam_note].filter(Boolean).join("; ");
  }, () => { if (turn === layerTurn) { $("layer-view").replaceChildren(); $("layer-notes").textContent = ""; } });
}

// The run's layer table (GET /api/layers): loading it builds the model, so a run whose code may not run here is
// refused now, with the reason.
async function listLayers(name) {
  chosenLayer = null;
  $("layer-title").textContent = "none chosen";
  for (const id of ["run-layers", "layer-view"]) $(id).replaceChildren();
  $("layer-notes").textContent = "";
  await attempt($("layers-error"), async () => {
    const summary = await api("GET", `/api/layers?run=${encodeURIComponent(name)}`);
    $("run-layers").replaceChildren(layerTable(summary, (row) => showLayer(row.name), true));
  });
}

async function chooseRun() {
  const name = $("run").value;
  if (!name) return;
  const run = await api("GET", `/api/runs/${name}`);
  const grey28 = run.in_chans === 1 && run.image === 28;
  $("draw-box").hidden = !grey28;
  $("run-info").textContent = `${run.config.model} on ${run.config.dataset}: ${run.in_chans} channel(s), ${run.image}px, classes ${(run.classes || []).join(", ")}`;
  $("target").replaceChildren(el("option", { value: "" }, "the top class"), ...(run.classes || []).map((c) => el("option", { value: c }, c)));
  predicted = false;
  await Promise.all([updatePreview(), listLayers(name)]);
}

function wireInputs() {
  $("run").addEventListener("change", chooseRun);
  $("predict").addEventListener("click", predict);
  $("target").addEventListener("change", () => chooseTarget($("target").value));
  $("test-index").addEventListener("input", () => { document.querySelector("input[value=test]").checked = true; updatePreview(); });
  $("upload").addEventListener("change", () => { document.querySelector("input[value=upload]").checked = true; updatePreview(); });
  for (const radio of document.querySelectorAll("input[name=source]")) radio.addEventListener("change", updatePreview);
}

async function main() {
  setupPad();
  runs = (await api("GET", "/api/runs")).filter((r) => r.status === "completed");
  $("run").replaceChildren(...runs.map((r) => el("option", { value: r.name }, `${r.name} (${fmt.pct(r.test_accuracy)})`)));
  const wanted = new URLSearchParams(location.search).get("run");
  if (wanted) $("run").value = wanted;
  if (!runs.length) showError($("error"), "no finished run yet: train one on the Train page");
  wireInputs();
  setupLightbox();
  await chooseRun();
}
main();
