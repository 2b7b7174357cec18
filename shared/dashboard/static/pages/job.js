// One job: its definition (as the API returns it: secrets are never sent), the schedule in
// words, the next 10 occurrences, the history, and the buttons that change it (none in
// read-only mode). The history refreshes every 2 s.
import { api } from "../api.js";
import { clear, jsonEditor, parseJson, showApiError } from "../editor.js";
import { fill, h, occurrenceOf, query, runLink, when } from "../dom.js";

export const title = "Job";

function editable(job) {
  const { status, ...properties } = job.properties;
  return { properties };
}

function historyTable(jobId, rows) {
  if (rows.length === 0) return h("p", { className: "muted", id: "history-empty" }, "No attempt yet.");
  return h("div", { className: "table-wrap" }, h("table", { id: "history" },
    h("thead", {}, h("tr", {}, ["Occurrence", "Action", "Status", "Started", "Late", "Message"]
      .map((c, i) => h("th", { scope: "col", className: [1, 4].includes(i) ? "optional" : null }, c)))),
    h("tbody", {}, rows.map((row) => {
      const p = row.properties;
      const id = row.id.split("/").pop();
      return h("tr", {},
        h("td", {}, runLink(jobId, occurrenceOf(id), when(p.expectedExecutionTime))),
        h("td", { className: "optional" }, `${p.actionName} #${p.retryCount}`),
        h("td", { className: `status-${p.status}` }, p.status),
        h("td", {}, when(p.startTime)),
        h("td", { className: "optional" }, p.lateSeconds ? `${p.lateSeconds.toFixed(1)} s` : "—"),
        h("td", {}, p.message));
    }))));
}

export async function render(main, params, context) {
  const id = params.get("id");
  const [job, info, occurrences] = await Promise.all([
    api(id), api(`/dashboard-data/job?${query({ id })}`), api(`${id}/occurrences?count=10`),
  ]);
  const history = h("div", { id: "history-box" });
  const refreshHistory = async () => {
    const page = await api(`${id}/history?$top=50`);
    history.replaceChildren(historyTable(id, page.value));
  };
  await refreshHistory();
  const note = h("p", { role: "status", id: "job-note" });
  const state = job.properties.state;
  const act = async (label, call) => {
    note.textContent = "";
    try { await call(); note.textContent = `${label}: done.`; } catch (error) { note.textContent = `${label}: ${error.message}`; }
  };
  // The shell stops this page's timer and renders it again.
  const rerender = async () => window.dispatchEvent(new HashChangeEvent("hashchange"));

  const buttons = context.readOnly ? null : h("div", { className: "actions", id: "job-actions" },
    h("button", { type: "button", className: "primary", onclick: () => act("Run now", async () => { await api(`${id}/run`, { method: "POST" }); await refreshHistory(); }) }, "Run now"),
    state === "Disabled" ? h("button", { type: "button", onclick: () => act("Enable", async () => { await api(id, { method: "PATCH", body: { properties: { state: "Enabled" } } }); await rerender(); }) }, "Enable") : null,
    state === "Enabled" ? h("button", { type: "button", onclick: () => act("Disable", async () => { await api(id, { method: "PATCH", body: { properties: { state: "Disabled" } } }); await rerender(); }) }, "Disable") : null,
    h("button", { type: "button", className: "danger", onclick: async () => {
      if (!(await context.confirm(`Delete job ${job.name}? Its history and outputs go with it.`))) return;
      await act("Delete", async () => { await api(id, { method: "DELETE" }); location.hash = "#/jobs"; });
    } }, "Delete…"));

  let editor = null;
  if (!context.readOnly && (state === "Enabled" || state === "Disabled")) {
    editor = jsonEditor("definition", JSON.stringify(editable(job), null, 2));
    const save = h("form", { id: "edit-job" }, editor.box, h("button", { type: "submit" }, "Save definition"));
    save.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = parseJson(editor);
      if (body === undefined) return;
      try { await api(id, { method: "PUT", body }); clear(editor); await rerender(); } catch (error) { showApiError(editor, error); }
    });
    editor.form = save;
  }
  const s = job.properties.status;
  fill(main, 
    h("p", {}, h("a", { href: "#/jobs" }, "← Jobs")),
    h("h1", {}, `Job ${job.name.split("/").pop()}`),
    h("p", { className: "muted" }, `Collection ${job.name.split("/")[0]}`),
    h("p", {}, "State: ", h("strong", { id: "job-state", className: `state-${state}` }, state),
      ` · ${info.kind} · `, h("span", { id: "job-schedule" }, info.schedule)),
    h("p", { className: "muted" }, `Executions ${s.executionCount} · failures ${s.failureCount} · faulted ${s.faultedCount} · missed ${s.missedCount ?? 0} · next run ${when(s.nextExecutionTime)}`),
    buttons, note,
    info.running.length ? h("p", {}, "Running now: ", info.running.map((r) => runLink(id, r.occurrence, `${r.action} #${r.attempt} (${when(r.nominal)})`))) : null,
    h("div", { className: "grid2" },
      h("section", {}, h("h2", {}, "Next 10 occurrences"),
        h("ol", { id: "occurrences" }, occurrences.value.map((t) => h("li", {}, when(t))))),
      h("section", {}, h("h2", {}, "Definition"),
        editor ? editor.form : h("pre", { id: "definition" }, JSON.stringify(editable(job), null, 2)))),
    h("h2", {}, "History"), history,
  );
  const timer = setInterval(() => refreshHistory().catch(() => {}), 2000);
  return () => clearInterval(timer);
}
