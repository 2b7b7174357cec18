// Overview: jobs by state, attempts and failures per hour and per day, lateness percentiles,
// what runs now, and the depth of the executions queue and its poison queue. Refreshes every 5 s.
import { api } from "../api.js";
import { barChart } from "../chart.js";
import { fill, h, jobLink, runLink, when } from "../dom.js";

export const title = "Overview";

function tile(label, value, id) {
  return h("div", { className: "tile", id }, h("span", { className: "n" }, value), label);
}

function draw(main, data) {
  const hourLabel = (iso) => iso.slice(11, 16);
  const dayLabel = (iso) => iso.slice(5, 10);
  fill(main, 
    h("h1", {}, "Overview"),
    h("h2", {}, `Jobs by state (${data.jobs} in all)`),
    h("div", { className: "tiles", id: "states" },
      Object.entries(data.states).map(([state, n]) => tile(state, n, `state-${state}`))),
    h("h2", {}, "Queues and lateness"),
    h("div", { className: "tiles" },
      tile("Executions queue", data.queues.executions, "queue-executions"),
      tile("Poison queue", data.queues.poison, "queue-poison"),
      tile("Lateness p50 (24 h)", data.lateness.p50 ?? "—"),
      tile("Lateness p90 (24 h)", data.lateness.p90 ?? "—"),
      tile("Lateness p99 (24 h)", data.lateness.p99 ?? "—")),
    h("div", { className: "grid2" },
      h("section", {}, h("h2", {}, "Attempts per hour (48 h, UTC)"),
        barChart(data.hourly, { title: "Attempts and failures per hour", label: hourLabel })),
      h("section", {}, h("h2", {}, "Attempts per day (14 days, UTC)"),
        barChart(data.daily, { title: "Attempts and failures per day", label: dayLabel }))),
    h("p", { className: "legend" }, h("span", {}, h("span", { className: "sw attempts" }), "attempts"),
      h("span", {}, h("span", { className: "sw failures" }), "failed")),
    h("h2", {}, "Running now"),
    data.running.length === 0 ? h("p", { className: "muted" }, "Nothing is running.") :
      h("div", { className: "table-wrap" }, h("table", {},
        h("thead", {}, h("tr", {}, ["Job", "Occurrence", "Action", "Started"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, data.running.map((r) => h("tr", {},
          h("td", {}, jobLink(r.job, r.name)),
          h("td", {}, runLink(r.job, r.occurrence, when(r.nominal))),
          h("td", {}, `${r.action} #${r.attempt}`),
          h("td", {}, when(r.startedAt))))))),
  );
}

export async function render(main) {
  draw(main, await api("/dashboard-data/overview"));
  const timer = setInterval(async () => {
    try { draw(main, await api("/dashboard-data/overview")); } catch { /* next tick */ }
  }, 5000);
  return () => clearInterval(timer);
}
