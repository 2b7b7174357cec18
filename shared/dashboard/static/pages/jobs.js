// Jobs of all collections: search, filters, sort and pages come from the server
// (/api/dashboard-data/jobs), which never sends more than one page to the browser.
import { api } from "../api.js";
import { clear, jsonEditor, nameInput, parseJson, showApiError } from "../editor.js";
import { fill, h, jobLink, query, runLink, when } from "../dom.js";

export const title = "Jobs";
const STATES = ["", "Enabled", "Disabled", "Completed", "Faulted"];
const SORTS = [["name", "Name"], ["collection", "Collection"], ["state", "State"], ["kind", "Kind"],
  ["nextRun", "Next run"], ["lastRun", "Last run"]];
const TEMPLATE = {
  properties: {
    action: { type: "Http", request: { uri: "https://example.com/", method: "GET" } },
    recurrence: { frequency: "Hour", interval: 1 },
  },
};

function select(id, label, options, value) {
  const el = h("select", { id }, options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)));
  return [el, h("div", {}, h("label", { for: id }, label), el)];
}

function newJobForm(context) {
  const collection = nameInput("new-collection", "Collection name", "default");
  const name = nameInput("new-name", "Job name");
  const editor = jsonEditor("new-definition", JSON.stringify(TEMPLATE, null, 2));
  const status = h("p", { role: "status" });
  const inputs = { jobCollectionName: collection.input, jobName: name.input };
  const form = h("form", { id: "new-job", "aria-labelledby": "new-job-title" },
    h("h2", { id: "new-job-title" }, "New job"),
    h("div", { className: "row" }, collection.box, name.box), editor.box,
    h("button", { type: "submit", className: "primary" }, "Create job"), status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear(editor, inputs);
    status.textContent = "";
    const body = parseJson(editor);
    if (body === undefined) return;
    const c = encodeURIComponent(collection.input.value.trim());
    const j = encodeURIComponent(name.input.value.trim());
    try {
      const existing = await fetchCollection(c);
      if (!existing) await api(`/jobCollections/${c}`, { method: "PUT", body: {} });
      const created = await api(`/jobCollections/${c}/jobs/${j}`, { method: "PUT", body });
      location.hash = `#/job?${query({ id: created.id })}`;
    } catch (error) {
      showApiError(editor, error, inputs);
    }
  });
  return h("details", { className: "new" }, h("summary", {}, "New job…"), form);
}

async function fetchCollection(c) {
  try { return await api(`/jobCollections/${c}`); } catch (error) {
    if (error.status === 404) return null;
    throw error;
  }
}

export async function render(main, params, context) {
  const state = {
    search: params.get("search") || "", state: params.get("state") || "", kind: params.get("kind") || "",
    collection: params.get("collection") || "", sort: params.get("sort") || "name",
    order: params.get("order") || "asc", skip: Number(params.get("skip") || 0), top: 25,
  };
  const data = await api(`/dashboard-data/jobs?${query(state)}`);
  const go = (changes) => { location.hash = `#/jobs?${query({ ...state, ...changes, top: undefined })}`; };

  const search = h("input", { id: "search", type: "search", value: state.search, placeholder: "part of a name" });
  const [stateSel, stateBox] = select("filter-state", "State", STATES.map((s) => [s, s || "Any"]), state.state);
  const [kindSel, kindBox] = select("filter-kind", "Kind", [["", "Any"], ...data.kinds.map((k) => [k, k])], state.kind);
  const [collSel, collBox] = select("filter-collection", "Collection",
    [["", "Any"], ...data.collections.map((c) => [c.id, c.name])], state.collection);
  const [sortSel, sortBox] = select("sort", "Sort by", SORTS, state.sort);
  const [orderSel, orderBox] = select("order", "Order", [["asc", "Ascending"], ["desc", "Descending"]], state.order);
  const filters = h("form", { className: "row", role: "search", "aria-label": "Find jobs" },
    h("div", {}, h("label", { for: "search" }, "Search"), search), stateBox, kindBox, collBox, sortBox, orderBox,
    h("button", { type: "submit" }, "Apply"));
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    go({ search: search.value, state: stateSel.value, kind: kindSel.value, collection: collSel.value,
      sort: sortSel.value, order: orderSel.value, skip: 0 });
  });
  for (const sel of [stateSel, kindSel, collSel, sortSel, orderSel]) sel.addEventListener("change", () => filters.requestSubmit());

  const rows = data.value.map((job) => h("tr", { "data-job": job.name },
    h("td", {}, jobLink(job.id, job.name)),
    h("td", { className: "optional" }, job.collection),
    h("td", { className: `state-${job.state}` }, job.state),
    h("td", { className: "optional" }, job.kind),
    h("td", { className: "optional" }, job.schedule),
    h("td", { className: "next-run" }, when(job.nextRun)),
    h("td", { className: "last-run" }, job.lastRun
      ? h("span", { className: `status-${job.lastRun.status}` }, runLink(job.id, job.lastRun.occurrence, `${job.lastRun.status} ${when(job.lastRun.time)}`))
      : "—"),
    h("td", { className: "optional" }, `${job.counters.executions} / ${job.counters.failures} / ${job.counters.faulted}`)));
  const first = data.total ? state.skip + 1 : 0, last = Math.min(state.skip + state.top, data.total);
  fill(main, 
    h("h1", {}, "Jobs"),
    context.readOnly ? null : newJobForm(context),
    filters,
    h("p", { role: "status", id: "count" }, `${first}–${last} of ${data.total}`),
    h("div", { className: "table-wrap" }, h("table", { id: "jobs" },
      h("caption", { className: "muted" }, "Counters: executions / failures / faulted"),
      h("thead", {}, h("tr", {}, ["Name", "Collection", "State", "Kind", "Schedule", "Next run", "Last run", "Counters"]
        .map((c, i) => h("th", { scope: "col", className: [1, 3, 4, 7].includes(i) ? "optional" : null }, c)))),
      h("tbody", {}, rows))),
    h("div", { className: "actions" },
      h("button", { type: "button", disabled: state.skip === 0, onclick: () => go({ skip: Math.max(0, state.skip - state.top) }) }, "Previous page"),
      h("button", { type: "button", disabled: last >= data.total, onclick: () => go({ skip: state.skip + state.top }) }, "Next page")),
  );
}
