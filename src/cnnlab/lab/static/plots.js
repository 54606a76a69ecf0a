// The lab's Plotly helpers, an ES module: one configuration, one legend placement, one palette and the shared
// two-axis loss/accuracy chart. Plotly itself is the global that /plotly.min.js defines.

// No toolbar: Plotly floats it over the plot's top right corner, on the data and the titles. Drag still zooms and a
// double click resets.
export const PLOT_CONFIG = { displaylogo: false, responsive: true, displayModeBar: false };

// A horizontal legend under the plot, below the x axis title (the container's bottom edge, which Plotly keeps
// clear of the axes), so it covers no data at any width. A layout's margin.b must leave it room.
export const LEGEND_BELOW = { orientation: "h", xref: "container", x: 0, xanchor: "left", yref: "container", y: 0, yanchor: "bottom" };

// Tableau 20, its ten dark colours first, then their light twins; the twins get the next marker shape, so no two
// traces share colour and shape (up to 60) and none shares a colour up to 20.
export const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#b07aa1", "#499894", "#b6992d", "#d37295", "#9d7660", "#79706e",
  "#a0cbe8", "#ffbe7d", "#ff9d9a", "#8cd17d", "#d4a6c8", "#86bcb6", "#f1ce63", "#fabfd2", "#d7b5a6", "#bab0ac"];
const SYMBOLS = ["circle", "diamond", "square", "triangle-up", "x", "star"];
export function traceStyle(i) {
  return { color: PALETTE[i % PALETTE.length], symbol: SYMBOLS[Math.floor(i / 10) % SYMBOLS.length] };
}

// Text for Plotly labels, names and hover text: Plotly reads <b>, <i>, <br>... in them as markup, so a class or run
// named "<b>x" would turn bold. Its entities it decodes back, so the name reads as written.
export function plotText(s) {
  return String(s).replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

// Loss on the left axis, accuracy (0 to 100%) on the right: the Train page's live curve (x: step) and a run's
// curves (x: epoch) share this layout. `xaxis` adds to the x axis (its title, a dtick).
export function lossAccuracyLayout(xaxis) {
  return {
    margin: { t: 10, r: 50 }, xaxis: { automargin: true, ...xaxis }, yaxis: { title: { text: "loss" } },
    yaxis2: { title: { text: "accuracy" }, overlaying: "y", side: "right", range: [0, 1], tickformat: ".0%", dtick: 0.25, showgrid: false, automargin: true },
    legend: LEGEND_BELOW,
  };
}

// A phased run's boundaries as curves.png draws them: a grey dashed vertical line where each later phase begins,
// labelled at its top ("phase 2: all"). `marks` are the API's phase_marks; `at(mark)` is a mark's x on the chart
// (an epoch, or a step on the Train page's live curve).
export function phaseLines(marks, at) {
  return {
    shapes: marks.map((m) => ({ type: "line", xref: "x", yref: "paper", x0: at(m), x1: at(m), y0: 0, y1: 1, line: { color: "gray", width: 1, dash: "dash" } })),
    annotations: marks.map((m) => ({ xref: "x", yref: "paper", x: at(m), y: 1, xanchor: "left", yanchor: "top", showarrow: false,
      text: plotText(m.label), font: { size: 11, color: "dimgray" } })),
  };
}

// `marks`: phaseLines' shapes and annotations, none for a run in one phase.
export function plotLossAccuracy(target, traces, xaxis, marks = { shapes: [], annotations: [] }) {
  return Plotly.react(target, traces, { ...lossAccuracyLayout(xaxis), ...marks }, PLOT_CONFIG);
}
