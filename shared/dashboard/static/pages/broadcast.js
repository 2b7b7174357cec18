// One broadcast job: its request, deviceJobStatistics as a progress bar that moves while it runs
// (polled every 1.5 s; 5 s while it waits for its start), the per-device records filtered by
// status a page at a time (the server never sends more than one page), and Cancel (with a
// confirmation; not in read-only mode, and the server refuses it there too).
import { api } from "../api.js";
import { fill, h, query, when } from "../dom.js";
import { progressBar } from "../progress.js";

export const title = "Broadcast";
const ENDED = ["completed", "failed", "cancelled"];
const DEVICE_STATUSES = [["", "Any"], ["pending", "pending"], ["running", "running"],
  ["completed", "completed"], ["failed", "failed"], ["canceled", "canceled"]];
const PAGE = 25;

function outcome(record) {
  const response = record.outcome && record.outcome.deviceMethodResponse;
  if (response) return `${response.status} ${JSON.stringify(response.payload ?? null).slice(0, 120)}`;
  return record.outcome ? JSON.stringify(record.outcome).slice(0, 120) : "—";
}

function deviceRows(records) {
  return records.map((r) => h("tr", { "data-device": r.deviceId },
    h("td", {}, r.deviceId),
    h("td", { className: `dstatus-${r.status}` }, r.status),
    h("td", {}, outcome(r)),
    h("td", {}, r.error ? `${r.error.code}: ${r.error.description ?? ""}` : "—"),
    h("td", { className: "optional" }, when(r.endTimeUtc))));
}

function details(job) {
  const method = job.cloudToDeviceMethod ? `method ${job.cloudToDeviceMethod.methodName}` : "twin update";
  return h("dl", { className: "facts", id: "broadcast-facts" },
    h("dt", {}, "Status"), h("dd", { id: "broadcast-status", className: `bstatus-${job.status}` }, job.status),
    h("dt", {}, "Type"), h("dd", {}, `${job.type} (${method})`),
    h("dt", {}, "Devices"), h("dd", {}, h("code", {}, job.queryCondition)),
    h("dt", {}, "Start"), h("dd", {}, when(job.startTime)),
    h("dt", {}, "End"), h("dd", {}, job.endTime.startsWith("9999") ? "—" : when(job.endTime)),
    job.failureReason ? [h("dt", {}, "Reason"), h("dd", {}, job.failureReason)] : null);
}

export async function render(main, params, context) {
  const id = params.get("id");
  let job = await api(`/dashboard-data/broadcast?${query({ id })}`);
  const table = { status: "", tokens: [""] }; // tokens: the continuation of each page shown so far
  const facts = h("div", {}, details(job));
  const progress = h("div", { "aria-live": "polite" }, progressBar(job.deviceJobStatistics || {}));
  const body = h("tbody", {});
  const count = h("p", { className: "muted", id: "devices-page" });
  const prev = h("button", { type: "button", onclick: () => { table.tokens.pop(); loadDevices(); } }, "Previous page");
  const next = h("button", { type: "button" }, "Next page");
  let nextToken = null;
  next.addEventListener("click", () => { table.tokens.push(nextToken); loadDevices(); });
  const loadDevices = async () => {
    const continuation = table.tokens[table.tokens.length - 1];
    const page = await api(`/dashboard-data/broadcast-devices?${query({ id, status: table.status, top: PAGE, continuation })}`);
    body.replaceChildren(...deviceRows(page.value));
    nextToken = page.continuation;
    next.disabled = !nextToken;
    prev.disabled = table.tokens.length <= 1;
    count.textContent = `Page ${table.tokens.length}${page.value.length ? "" : ": no device record"}`;
  };
  const statusSel = h("select", { id: "device-status" }, DEVICE_STATUSES.map(([v, t]) => h("option", { value: v }, t)));
  statusSel.addEventListener("change", () => { table.status = statusSel.value; table.tokens = [""]; loadDevices(); });
  const note = h("p", { role: "status", id: "broadcast-note" });
  const cancel = context.readOnly ? null : h("button", { type: "button", className: "danger", id: "cancel-broadcast",
    hidden: ENDED.includes(job.status), onclick: async () => {
      if (!(await context.confirm(`Cancel broadcast ${id}? Devices not called yet will not be called.`, "Cancel broadcast"))) return;
      try { job = await api(`/dashboard-data/broadcast-cancel?${query({ id })}`, { method: "POST" }); note.textContent = "Cancelled."; }
      catch (error) { note.textContent = `Cancel: ${error.message}`; }
      await refresh();
    } }, "Cancel broadcast…");

  const refresh = async () => {
    job = await api(`/dashboard-data/broadcast?${query({ id })}`);
    facts.replaceChildren(details(job));
    progress.replaceChildren(progressBar(job.deviceJobStatistics || {}));
    if (cancel) cancel.hidden = ENDED.includes(job.status);
    await loadDevices();
  };
  await loadDevices();
  fill(main,
    h("p", {}, h("a", { href: "#/broadcasts" }, "← Broadcasts")),
    h("h1", {}, `Broadcast ${id}`),
    facts,
    h("div", { className: "actions" }, cancel), note,
    h("h2", {}, "Progress"), progress,
    h("h2", {}, "Devices"),
    h("div", { className: "row" }, h("div", {}, h("label", { for: "device-status" }, "Device status"), statusSel)),
    h("div", { className: "table-wrap" }, h("table", { id: "broadcast-devices" },
      h("thead", {}, h("tr", {}, ["Device", "Status", "Response", "Error", "Ended"]
        .map((c, i) => h("th", { scope: "col", className: i === 4 ? "optional" : null }, c)))),
      body)),
    count,
    h("div", { className: "actions" }, prev, next),
  );
  let timer = null, stopped = false;
  const tick = async () => {
    if (stopped || ENDED.includes(job.status)) return;
    try { await refresh(); } catch { /* next tick */ }
    if (!stopped) timer = setTimeout(tick, job.status === "running" ? 1500 : 5000);
  };
  timer = setTimeout(tick, job.status === "running" ? 1500 : 5000);
  return () => { stopped = true; clearTimeout(timer); };
}
