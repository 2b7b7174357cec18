// Registered devices (read through /api/dashboard-data/devices with the function key): id,
// status, authentication type and the endpoint's host (never keys or endpoint header values:
// the server does not send them), searched by id prefix and/or a condition in the registry's
// query language, a page at a time. A condition the registry refuses shows its message (with
// the position of the fault) next to the field.
import { ApiError, api } from "../api.js";
import { fill, h, query } from "../dom.js";

export const title = "Devices";

function tags(value) {
  const entries = Object.entries(value || {});
  return entries.length ? entries.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(", ") : "—";
}

export async function render(main, params) {
  const state = { prefix: params.get("prefix") || "", condition: params.get("condition") || "",
    continuation: params.get("continuation") || "" };
  const go = (changes) => { location.hash = `#/devices?${query({ ...state, ...changes })}`; };
  const prefix = h("input", { id: "device-prefix", value: state.prefix, placeholder: "pump-" });
  const condition = h("input", { id: "device-condition", value: state.condition, size: 40,
    placeholder: "tags.site = 'berlin'", "aria-describedby": "device-condition-error" });
  const conditionError = h("p", { id: "device-condition-error", className: "error", role: "alert" });
  const form = h("form", { className: "row", role: "search", "aria-label": "Find devices" },
    h("div", {}, h("label", { for: "device-prefix" }, "Id starts with"), prefix),
    h("div", {}, h("label", { for: "device-condition" }, "Condition (query language)"), condition),
    h("button", { type: "submit" }, "Search"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    go({ prefix: prefix.value.trim(), condition: condition.value.trim(), continuation: "" });
  });
  let data = { value: [], continuation: null };
  try {
    data = await api(`/dashboard-data/devices?${query(state)}`);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 400) throw error;
    const field = error.target === "condition" ? condition : prefix;
    field.setAttribute("aria-invalid", "true");
    conditionError.textContent = error.message;
  }
  const rows = data.value.map((d) => h("tr", { "data-device": d.deviceId },
    h("td", {}, d.deviceId),
    h("td", { className: `dstatus-${d.status}` }, d.status),
    h("td", { className: "optional" }, d.authenticationType),
    h("td", {}, d.endpointHost || "—"),
    h("td", { className: "optional" }, tags(d.tags))));
  fill(main,
    h("h1", {}, "Devices"),
    form, conditionError,
    data.value.length === 0 ? h("p", { className: "muted", id: "devices-empty" }, "No device found.") :
      h("div", { className: "table-wrap" }, h("table", { id: "devices" },
        h("thead", {}, h("tr", {}, ["Device", "Status", "Authentication", "Endpoint host", "Tags"]
          .map((c, i) => h("th", { scope: "col", className: [2, 4].includes(i) ? "optional" : null }, c)))),
        h("tbody", {}, rows))),
    h("div", { className: "actions" },
      h("button", { type: "button", disabled: !state.continuation, onclick: () => go({ continuation: "" }) }, "First page"),
      h("button", { type: "button", disabled: !data.continuation, onclick: () => go({ continuation: data.continuation }) }, "Next page")),
  );
}
