// Broadcast jobs (IoT Hub's jobs API, read through /api/dashboard-data/broadcasts with the
// function key): status, type, start and statistics, filtered by status and type, a page at a time.
import { api } from "../api.js";
import { fill, h, query, when } from "../dom.js";
import { progressWords } from "../progress.js";

export const title = "Broadcasts";
const STATUSES = ["", "queued", "scheduled", "running", "completed", "failed", "cancelled"];
const TYPES = [["", "Any"], ["scheduleDeviceMethod", "Direct method"], ["scheduleUpdateTwin", "Twin update"]];

export function broadcastLink(id, text = id) {
  return h("a", { href: `#/broadcast?${query({ id })}` }, text);
}

function select(id, label, options, value) {
  const el = h("select", { id }, options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)));
  return [el, h("div", {}, h("label", { for: id }, label), el)];
}

export async function render(main, params) {
  const state = { jobStatus: params.get("jobStatus") || "", jobType: params.get("jobType") || "",
    continuation: params.get("continuation") || "" };
  const data = await api(`/dashboard-data/broadcasts?${query(state)}`);
  const go = (changes) => { location.hash = `#/broadcasts?${query({ ...state, ...changes })}`; };
  const [statusSel, statusBox] = select("filter-status", "Status", STATUSES.map((s) => [s, s || "Any"]), state.jobStatus);
  const [typeSel, typeBox] = select("filter-type", "Type", TYPES, state.jobType);
  const filters = h("form", { className: "row", role: "search", "aria-label": "Filter broadcasts" },
    statusBox, typeBox, h("button", { type: "submit" }, "Apply"));
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    go({ jobStatus: statusSel.value, jobType: typeSel.value, continuation: "" });
  });
  for (const sel of [statusSel, typeSel]) sel.addEventListener("change", () => filters.requestSubmit());
  const rows = data.value.map((job) => h("tr", { "data-broadcast": job.jobId },
    h("td", {}, broadcastLink(job.jobId)),
    h("td", { className: "optional" }, job.type),
    h("td", { className: `bstatus-${job.status}` }, job.status),
    h("td", {}, when(job.startTime)),
    h("td", { className: "optional" }, job.deviceJobStatistics ? progressWords(job.deviceJobStatistics) : "—")));
  fill(main,
    h("h1", {}, "Broadcasts"),
    filters,
    data.value.length === 0 ? h("p", { className: "muted", id: "broadcasts-empty" }, "No broadcast job.") :
      h("div", { className: "table-wrap" }, h("table", { id: "broadcasts" },
        h("thead", {}, h("tr", {}, ["Job id", "Type", "Status", "Start", "Devices"]
          .map((c, i) => h("th", { scope: "col", className: [1, 4].includes(i) ? "optional" : null }, c)))),
        h("tbody", {}, rows))),
    h("div", { className: "actions" },
      h("button", { type: "button", disabled: !state.continuation, onclick: () => go({ continuation: "" }) }, "First page"),
      h("button", { type: "button", disabled: !data.continuation, onclick: () => go({ continuation: data.continuation }) }, "Next page")),
  );
}
