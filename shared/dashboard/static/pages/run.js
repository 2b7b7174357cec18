// One occurrence of a job: its attempts as a timeline (history rows, plus the attempt under way),
// and for jobs that keep output (Code, WebJob) each attempt's output: shown live while the
// attempt runs (long-polling the output API with ?follow=true) and downloadable. While an attempt
// of the occurrence runs, the page checks every 1.5 s (and at once when its output ends) and
// shows the finished history row in its place by itself, its output still open.
import { api, raw } from "../api.js";
import { fill, h, jobLink, occurrenceOf, query, when } from "../dom.js";

export const title = "Run";
// Attempts (`{occurrence}-{phase}{attempt}`, as history ids and output ids end) whose output this
// tab followed live: shown open again when their history row replaces them.
const followed = new Set();
const attemptKey = (occurrence, id) => `${occurrence}-${id.split("-").pop()}`;

async function follow(url, pre, live) {
  let offset = 0;
  for (;;) {
    if (!live.on) return;
    const response = await raw(`${url}?${query({ follow: "true", offset })}`);
    if (!response.ok) { pre.textContent += `\n[output not available: HTTP ${response.status}]`; return; }
    pre.textContent += await response.text();
    offset = Number(response.headers.get("x-output-next-offset") || offset);
    if (response.headers.get("x-output-ended") === "true") { live.ended(); return; }
  }
}

function download(url, name) {
  return h("button", { type: "button", onclick: async () => {
    const response = await raw(url);
    const blob = await response.blob();
    const link = h("a", { href: URL.createObjectURL(blob), download: name });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  } }, "Download output");
}

function outputOf(apiPath, name, live, autostart) {
  const pre = h("pre", { className: "output", "aria-live": "polite" });
  const box = h("div", { className: "output-box" });
  const start = () => { box.replaceChildren(pre); follow(apiPath, pre, live); };
  if (autostart) start();
  return h("div", {},
    h("div", { className: "actions" },
      autostart ? null : h("button", { type: "button", onclick: start }, "Show output"),
      download(apiPath, name)),
    box);
}

export async function render(main, params) {
  const jobId = params.get("job");
  const occurrence = params.get("occurrence");
  const live = { on: true, ended: () => {} };
  const [history, info] = await Promise.all([
    api(`${jobId}/history?$top=100`), api(`/dashboard-data/job?${query({ id: jobId })}`),
  ]);
  const attempts = history.value
    .filter((row) => occurrenceOf(row.id.split("/").pop()) === occurrence)
    .reverse();
  const running = info.running.filter((r) => r.occurrence === occurrence);
  const items = attempts.map((row) => {
    const p = row.properties;
    const historyId = row.id.split("/").pop();
    const took = p.endTime ? ((new Date(p.endTime) - new Date(p.startTime)) / 1000).toFixed(1) + " s" : "";
    return h("li", { className: `status-${p.status}` },
      h("strong", {}, `${p.actionName} #${p.retryCount} · ${p.status}`),
      h("div", { className: "muted" }, `${when(p.startTime)} → ${when(p.endTime)} ${took}${p.lateSeconds ? ` · late ${p.lateSeconds.toFixed(1)} s` : ""}`),
      h("div", {}, p.message),
      p.output ? outputOf(`${jobId}/history/${historyId}/output`, `${occurrence}-${historyId}.log`, live, followed.has(attemptKey(occurrence, historyId))) : null);
  });
  for (const r of running) {
    if (["Code", "WebJob"].includes(info.kind)) followed.add(attemptKey(occurrence, r.outputId));
    items.push(h("li", { className: "status-Running" },
      h("strong", {}, `${r.action} #${r.attempt} · Running`),
      h("div", { className: "muted" }, `started ${when(r.startedAt)}`),
      ["Code", "WebJob"].includes(info.kind)
        ? outputOf(`${jobId}/history/${r.outputId}/output`, `${occurrence}-${r.outputId}.log`, live, true) : null));
  }
  const name = jobId.split("/").pop();
  fill(main, 
    h("p", {}, jobLink(jobId, `← Job ${name}`)),
    h("h1", {}, `Run of ${name}`),
    h("p", { className: "muted" }, `Occurrence ${occurrence}`),
    items.length ? h("ol", { className: "timeline", id: "timeline" }, items)
      : h("p", { className: "muted" }, "No attempt of this occurrence is recorded (yet, or any more)."),
  );
  if (running.length === 0) return () => { live.on = false; };
  // Until every running attempt of this occurrence has its history row: then render again.
  const recorded = new Set(attempts.map((row) => row.id.split("/").pop()));
  let timer = null;
  const check = async () => {
    clearTimeout(timer);
    if (!live.on) return;
    try {
      const now = await api(`/dashboard-data/job?${query({ id: jobId })}`);
      const still = now.running.filter((r) => r.occurrence === occurrence);
      const page = still.length ? null : await api(`${jobId}/history?$top=100`);
      const fresh = page && page.value.some((row) => occurrenceOf(row.id.split("/").pop()) === occurrence
        && !recorded.has(row.id.split("/").pop()));
      if (fresh) { window.dispatchEvent(new HashChangeEvent("hashchange")); return; }
    } catch { /* the next check */ }
    if (live.on) timer = setTimeout(check, 1500);
  };
  live.ended = check;
  timer = setTimeout(check, 1500);
  return () => { live.on = false; clearTimeout(timer); };
}
