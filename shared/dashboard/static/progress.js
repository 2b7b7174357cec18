// A broadcast's deviceJobStatistics as one bar: succeeded, failed, running and pending segments
// (inline SVG: the page's CSP allows no inline style), announced as a progressbar with the
// counts in words for screen readers, and the same words shown under it.
const NS = "http://www.w3.org/2000/svg";
export const SEGMENTS = [["succeededCount", "succeeded"], ["failedCount", "failed"],
  ["runningCount", "running"], ["pendingCount", "pending"]];

export function progressWords(stats) {
  const total = stats.deviceCount || 0;
  const done = (stats.succeededCount || 0) + (stats.failedCount || 0);
  const parts = SEGMENTS.map(([key, word]) => `${stats[key] || 0} ${word}`).join(", ");
  return `${done} of ${total} devices done: ${parts}`;
}

export function progressBar(stats, id = "progress") {
  const total = stats.deviceCount || 0;
  const done = (stats.succeededCount || 0) + (stats.failedCount || 0);
  const box = document.createElement("div");
  box.className = "progress";
  box.id = id;
  box.setAttribute("role", "progressbar");
  box.setAttribute("aria-valuemin", "0");
  box.setAttribute("aria-valuemax", String(total));
  box.setAttribute("aria-valuenow", String(done));
  box.setAttribute("aria-valuetext", progressWords(stats));
  const bar = document.createElementNS(NS, "svg");
  bar.setAttribute("viewBox", "0 0 1000 20");
  bar.setAttribute("preserveAspectRatio", "none");
  bar.setAttribute("aria-hidden", "true");
  let x = 0;
  for (const [key, word] of SEGMENTS) {
    const width = total ? (1000 * (stats[key] || 0)) / total : 0;
    const rect = document.createElementNS(NS, "rect");
    for (const [k, v] of Object.entries({ x, y: 0, width, height: 20, class: `seg-${word}` })) rect.setAttribute(k, String(v));
    rect.dataset.count = String(stats[key] || 0);
    bar.append(rect);
    x += width;
  }
  const words = document.createElement("p");
  words.className = "progress-text";
  words.textContent = total ? progressWords(stats) : "No device selected yet.";
  box.append(bar, words);
  return box;
}
