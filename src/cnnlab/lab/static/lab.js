// Shared helpers of the lab's pages: the JSON API, DOM building without innerHTML, number formats, job streams.
"use strict";

async function api(method, url, body) {
  const init = { method, headers: {} };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) { init.body = JSON.stringify(body); init.headers["Content-Type"] = "application/json"; }
  const response = await fetch(url, init);
  const type = response.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    const error = new Error((data && data.error) || `${response.status} ${response.statusText}`);
    error.field = data && data.field;  // the form field a refusal names, if any
    throw error;
  }
  return data;
}

// el("td", {class: "num"}, "12"): an element with attributes and children (strings become text nodes).
function el(tag, attrs, ...children) {
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

const fmt = {
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
};

function table(columns, rows, onClick) {
  // columns: [[header, (row) => cell, "num"?], ...]
  const head = el("tr", {}, columns.map(([h, , cls]) => el("th", { class: cls }, h)));
  const body = rows.map((row) => el("tr", { class: onClick ? "clickable" : null, onclick: onClick ? () => onClick(row) : null },
    columns.map(([, get, cls]) => el("td", { class: cls }, get(row)))));
  return el("table", {}, el("thead", {}, head), el("tbody", {}, body));
}

// Follow a job through its Server-Sent Events; onUpdate(view) on each change. Returns the EventSource.
function followJob(id, onUpdate) {
  const source = new EventSource(`/api/jobs/${encodeURIComponent(id)}/events`);
  source.onmessage = (event) => onUpdate(JSON.parse(event.data));
  source.addEventListener("end", () => source.close());  // else the browser reconnects (it does after a dropped line)
  return source;
}

function showError(node, error) { node.textContent = error ? String(error.message || error) : ""; }

function $(id) { return document.getElementById(id); }

const PLOT_CONFIG = { displaylogo: false, responsive: true };
