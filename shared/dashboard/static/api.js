// Every call to the API: the function key (kept in this tab's sessionStorage only) goes in the
// x-functions-key header. A 401 asks for the key again.
const KEY = "scheduler.functionKey";

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.target = error.target || "";
    this.details = error.details || [];
  }
}

export function hasKey() { return sessionStorage.getItem(KEY) !== null; }
export function setKey(key) { sessionStorage.setItem(KEY, key); }
export function forgetKey() { sessionStorage.removeItem(KEY); }

function headers(extra = {}) {
  const key = sessionStorage.getItem(KEY);
  return key ? { ...extra, "x-functions-key": key } : extra;
}

export async function raw(path, options = {}) {
  const response = await fetch(`/api${path}`, { ...options, headers: headers(options.headers) });
  if (response.status === 401) {
    forgetKey();
    window.dispatchEvent(new Event("scheduler:key-needed"));
  }
  return response;
}

export async function api(path, { method = "GET", body } = {}) {
  const options = { method };
  if (body !== undefined) {
    options.body = JSON.stringify(body);
    options.headers = { "content-type": "application/json" };
  }
  const response = await raw(path, options);
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}
