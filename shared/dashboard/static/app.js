// The dashboard's shell: the function key, the read-only flag, and a hash router over the pages.
// A page is one module in pages/ exporting `title` and `render(main, params, context)`, which
// may return a function that stops its timers; add it to PAGES (and to the nav in index.html).
import { api, forgetKey, hasKey, setKey } from "./api.js";
import { h } from "./dom.js";
import * as overview from "./pages/overview.js";
import * as jobs from "./pages/jobs.js";
import * as job from "./pages/job.js";
import * as run from "./pages/run.js";
import * as broadcasts from "./pages/broadcasts.js";
import * as broadcast from "./pages/broadcast.js";
import * as devices from "./pages/devices.js";

const PAGES = { "": overview, jobs, job, run, broadcasts, broadcast, devices };
// The nav entry a page belongs under.
const SECTION = { "": "overview", job: "jobs", run: "jobs", broadcast: "broadcasts" };
const context = { readOnly: true, confirm };
let stop = null;

async function askKey(message = "") {
  const dialog = document.getElementById("key-dialog");
  document.getElementById("key-error").textContent = message;
  const input = document.getElementById("key-input");
  input.value = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => { setKey(input.value.trim()); resolve(); }, { once: true });
    dialog.showModal();
    input.focus();
  });
}

function confirm(text, action = "Delete") {
  const dialog = document.getElementById("confirm-dialog");
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = action;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "cancel";
    dialog.showModal();
  });
}

async function loadSettings() {
  for (;;) {
    if (!hasKey()) await askKey();
    try {
      const settings = await api("/dashboard-data/settings");
      context.readOnly = settings.readOnly;
      document.getElementById("mode").hidden = !settings.readOnly;
      return;
    } catch (error) {
      if (error.status !== 401) throw error;
      forgetKey();
      await askKey("That key was refused.");
    }
  }
}

async function show() {
  if (stop) { stop(); stop = null; }
  const [path, search] = location.hash.replace(/^#\/?/, "").split("?");
  const page = PAGES[path] || overview;
  const params = new URLSearchParams(search || "");
  const main = document.getElementById("main");
  for (const link of document.querySelectorAll("nav a")) {
    const current = link.dataset.page === (SECTION[path] ?? path);
    if (current) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  document.title = `${page.title} · Job scheduler`;
  main.replaceChildren(h("p", {}, "Loading…"));
  try {
    stop = (await page.render(main, params, context)) || null;
  } catch (error) {
    main.replaceChildren(h("h1", {}, page.title), h("p", { className: "error", role: "alert" }, error.message));
  }
  main.focus({ preventScroll: true });
}

window.addEventListener("scheduler:key-needed", async () => { await askKey("The key was refused."); show(); });
window.addEventListener("hashchange", show);
document.getElementById("forget-key").addEventListener("click", async () => { forgetKey(); await loadSettings(); show(); });
await loadSettings();
await show();
