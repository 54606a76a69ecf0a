import { $, api, attempt, el, followJob, table } from "/static/lab.js";

let source = null;

async function showResult(name) {
  const html = await api("GET", `/api/experiments/results?name=${encodeURIComponent(name)}`);
  // The server renders results.md with markdown-it, raw HTML escaped and images confined to the experiment's folder.
  const doc = new DOMParser().parseFromString(html, "text/html");
  $("result").replaceChildren(...doc.body.childNodes);
  $("result-card").hidden = false;
}

async function run(name) {
  await attempt($("error"), async () => {
    const repeats = Number($("repeats").value);
    const body = { experiment: name, quick: true };
    if (repeats !== 1) body.repeats = repeats;  // 0, 1.5 or 500 go to the lab, which says what is wrong
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
    ["", (e) => el("button", { class: "secondary", onclick: () => run(e.name) }, "run --quick")],
  ], data.experiments));
}
main();
