// Shared helpers of the lab's pages, an ES module each page script imports from: the JSON API and its errors, DOM
// building without innerHTML, number formats, job streams. (Plot helpers are in plots.js.)

export async function api(method, url, body) {
  const init = { method, headers: {} };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) { init.body = JSON.stringify(body); init.headers["Content-Type"] = "application/json"; }
  const response = await fetch(url, init);
  const type = response.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    const error = new Error((data && data.error) || `${response.status} ${response.statusText}`);
    error.field = data && data.field;  // the form field a refusal names, if any
    error.layer = data && data.layer;  // a layer spec's offending layer, as typed
    throw error;
  }
  return data;
}

// Fields send a request per keystroke; an older answer arriving late must not overwrite a newer one (or its error).
// latest(key, promise) settles only for the newest promise of its key: the superseded ones never settle.
const latestTurns = {};
export function latest(key, promise) {
  const turn = (latestTurns[key] = (latestTurns[key] || 0) + 1);
  return new Promise((resolve, reject) => promise.then(
    (value) => { if (turn === latestTurns[key]) resolve(value); },
    (error) => { if (turn === latestTurns[key]) reject(error); }));
}

// el("td", {class: "num"}, "12"): an element with attributes and children (strings become text nodes).
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const fmt = {
  int: (v) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US")),
  pct: (v) => (v === null || v === undefined ? "–" : (100 * v).toFixed(2) + "%"),
  num: (v, digits = 4) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits)),
  big: (v) => {
    if (v === null || v === undefined) return "–";
    for (const [size, unit] of [[1e9, "G"], [1e6, "M"], [1e3, "k"]]) if (Math.abs(v) >= size) return (v / size).toFixed(2) + unit;
    return String(v);
  },
  secs: (v) => {
    if (v === null || v === undefined) return "–";
    v = Math.round(v);
    return v >= 60 ? `${Math.floor(v / 60)} min ${v % 60} s` : `${v} s`;
  },
  shape: (s) => (s && s.length ? s.join("×") : "–"),
  // A number for reading: whole numbers with thousands separators, others to 4 decimals at most (so 0.1 + 0.2
  // reads 0.3), and tiny or huge ones in exponent form, where fixed decimals would show 0 or a long row of digits.
  read: (v) => {
    if (v === null || v === undefined) return "–";
    if (typeof v !== "number") return String(v);
    if (v === 0) return "0";  // also -0
    const size = Math.abs(v);
    if (!Number.isInteger(v) && (size < 1e-3 || size >= 1e9)) return v.toExponential(2);
    return v.toLocaleString("en-US", { maximumFractionDigits: 4 });
  },
};

export function table(columns, rows, onClick) {
  // columns: [[header, (row) => cell, "num"?], ...]
  const head = el("tr", {}, columns.map(([h, , cls]) => el("th", { class: cls }, h)));
  const body = rows.map((row) => el("tr", { class: onClick ? "clickable" : null, onclick: onClick ? () => onClick(row) : null },
    columns.map(([, get, cls]) => el("td", { class: cls }, get(row)))));
  return el("table", {}, el("thead", {}, head), el("tbody", {}, body));
}

// Follow a job through its Server-Sent Events; onUpdate(view) on each change. Returns the EventSource.
export function followJob(id, onUpdate) {
  const source = new EventSource(`/api/jobs/${encodeURIComponent(id)}/events`);
  source.onmessage = (event) => onUpdate(JSON.parse(event.data));
  source.addEventListener("end", () => source.close());  // else the browser reconnects (it does after a dropped line)
  return source;
}

export function showError(node, error) { node.textContent = error ? String(error.message || error) : ""; }

// The one way the pages call the API and report a failure: `work` (its api calls) runs with `errorNode` cleared
// first, and a failure is shown there rather than thrown. Resolves to work's value, or to undefined after a failure,
// once `onError` (if given) has tidied what would read as a stale answer.
export async function attempt(errorNode, work, onError) {
  showError(errorNode);
  try {
    return await work();
  } catch (error) {
    showError(errorNode, error);
    if (onError) onError(error);
    return undefined;
  }
}

export function $(id) { return document.getElementById(id); }
