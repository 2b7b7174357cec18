// A job definition edited as JSON, with the API's validation error shown next to what it names:
// a name input when the error's target is a path segment, else under the JSON with the line of
// the field it names selected (and the field's path in the message).
import { ApiError } from "./api.js";
import { h } from "./dom.js";

export function jsonEditor(id, text) {
  const area = h("textarea", { id, rows: 16, spellcheck: "false", "aria-describedby": `${id}-error` });
  area.value = text;
  const error = h("p", { id: `${id}-error`, className: "error", role: "alert" });
  return { area, error, box: h("div", {}, h("label", { for: id }, "Definition (JSON)"), area, error) };
}

export function parseJson(editor) {
  clear(editor);
  try {
    return JSON.parse(editor.area.value);
  } catch (e) {
    show(editor, "body", `Not valid JSON: ${e.message}`);
    return undefined;
  }
}

export function clear(editor, inputs = {}) {
  editor.area.removeAttribute("aria-invalid");
  editor.error.textContent = "";
  for (const input of Object.values(inputs)) {
    input.removeAttribute("aria-invalid");
    const note = document.getElementById(`${input.id}-error`);
    if (note) note.textContent = "";
  }
}

// `inputs` maps a target (e.g. "jobName") to the input it names.
export function showApiError(editor, error, inputs = {}) {
  if (!(error instanceof ApiError)) throw error;
  const input = inputs[error.target];
  if (input) {
    input.setAttribute("aria-invalid", "true");
    document.getElementById(`${input.id}-error`).textContent = error.message;
    input.focus();
    return;
  }
  show(editor, error.target, error.message);
}

function show(editor, target, message) {
  const { area } = editor;
  area.setAttribute("aria-invalid", "true");
  editor.error.dataset.target = target || "";
  const field = (target || "").split(".").pop().replace(/\[\d+\]$/, "");
  const lines = area.value.split("\n");
  const index = field ? lines.findIndex((line) => line.includes(`"${field}"`)) : -1;
  editor.error.textContent = index >= 0 ? `Line ${index + 1}: ${message}` : message;
  if (index >= 0) {
    const start = lines.slice(0, index).reduce((n, line) => n + line.length + 1, 0);
    area.focus();
    area.setSelectionRange(start, start + lines[index].length);
  }
}

export function nameInput(id, label, value = "") {
  const input = h("input", { id, value, required: true, "aria-describedby": `${id}-error` });
  return { input, box: h("div", {}, h("label", { for: id }, label), input, h("p", { id: `${id}-error`, className: "error", role: "alert" })) };
}
