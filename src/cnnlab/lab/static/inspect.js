"use strict";
let runs = [];

function setupPad() {
  const pad = $("pad");
  const ctx = pad.getContext("2d");
  const clear = () => { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, pad.width, pad.height); };
  clear();
  let drawing = false;
  const at = (e) => { const r = pad.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; };
  pad.addEventListener("pointerdown", (e) => { drawing = true; ctx.beginPath(); ctx.moveTo(...at(e)); document.querySelector("input[value=draw]").checked = true; });
  pad.addEventListener("pointermove", (e) => {
    if (!drawing) return;
    ctx.lineWidth = 16; ctx.lineCap = "round"; ctx.strokeStyle = "#fff";
    ctx.lineTo(...at(e)); ctx.stroke();
  });
  for (const end of ["pointerup", "pointerleave"]) pad.addEventListener(end, () => { drawing = false; });
  $("clear").addEventListener("click", clear);
}

function figure(url, caption) { return el("figure", {}, el("img", { src: url, alt: caption, class: "plot" }), el("figcaption", {}, caption)); }

async function imageForm() {
  const form = new FormData();
  form.append("run", $("run").value);
  const source = document.querySelector("input[name=source]:checked").value;
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

async function predict() {
  showError($("error"));
  $("predict").disabled = true;
  try {
    const result = await api("POST", "/api/predict", await imageForm());
    const top = result.top.slice().reverse();
    Plotly.react("bars", [{ type: "bar", orientation: "h", x: top.map((t) => t.probability), y: top.map((t) => t.class) }],
      { margin: { t: 10, l: 90 }, xaxis: { range: [0, 1], title: { text: "probability" }, tickformat: ".0%" }, yaxis: { type: "category" } }, PLOT_CONFIG);
    $("truth").textContent = result.truth !== null ? `(true class: ${result.truth})` : "";
    $("overlays").replaceChildren(figure(result.input, "input"), figure(result.gradcam, "Grad-CAM"), figure(result.saliency, "saliency"));
    $("maps").replaceChildren(...result.feature_maps.map((m) => figure(m.url, `${m.layer} ${fmt.shape(m.shape)}`)));
    $("filters").replaceChildren(figure(result.filters.url, `${result.filters.layer}: ${fmt.shape(result.filters.shape)} kernels (mean over input channels)`));
  } catch (error) { showError($("error"), error); }
  $("predict").disabled = false;
}

async function chooseRun() {
  const name = $("run").value;
  if (!name) return;
  const run = await api("GET", `/api/runs/${name}`);
  const grey28 = run.in_chans === 1 && run.image === 28;
  $("draw-box").hidden = !grey28;
  $("run-info").textContent = `${run.config.model} on ${run.config.dataset}: ${run.in_chans} channel(s), ${run.image}px, classes ${(run.classes || []).join(", ")}`;
}

async function main() {
  setupPad();
  runs = (await api("GET", "/api/runs")).filter((r) => r.status === "completed");
  $("run").replaceChildren(...runs.map((r) => el("option", { value: r.name }, `${r.name} (${fmt.pct(r.test_accuracy)})`)));
  const wanted = new URLSearchParams(location.search).get("run");
  if (wanted) $("run").value = wanted;
  if (!runs.length) showError($("error"), "no finished run yet: train one on the Train page");
  $("run").addEventListener("change", chooseRun);
  $("predict").addEventListener("click", predict);
  await chooseRun();
}
main();
