// Builds elements from text only (never innerHTML): nothing the API returns can become markup.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "className") el.className = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z").replace(/:00Z$/, "Z");
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== undefined && v !== null) search.set(k, v);
  return search.toString();
}

// The occurrence part of a history id: `{inverted start}-{occurrence}-{phase}{attempt}`.
export function occurrenceOf(historyId) {
  const parts = historyId.split("-");
  return parts.slice(1, -1).join("-");
}

export function runLink(jobId, occurrence, text) {
  return h("a", { href: `#/run?${query({ job: jobId, occurrence })}` }, text);
}

export function jobLink(jobId, text) {
  return h("a", { href: `#/job?${query({ id: jobId })}` }, text);
}

// Replace an element's children, leaving out the null ones (the DOM would print "null").
export function fill(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}
