// Bar charts drawn as inline SVG (no chart library): attempts and, over them, failures.
const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

export function barChart(points, { title, label }) {
  const width = 720, height = 200, pad = 28;
  const max = Math.max(1, ...points.map((p) => p.attempts));
  const step = (width - pad * 2) / Math.max(1, points.length);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": title });
  root.append(svg("title", {}, title));
  root.append(svg("text", { x: 2, y: 12 }, String(max)));
  root.append(svg("text", { x: 2, y: height - pad + 4 }, "0"));
  points.forEach((p, i) => {
    const x = pad + i * step, barW = Math.max(1, step - 2);
    const ah = ((height - pad * 2) * p.attempts) / max;
    const fh = ((height - pad * 2) * p.failures) / max;
    const bar = svg("rect", { x, y: height - pad - ah, width: barW, height: ah, class: "attempts" });
    bar.append(svg("title", {}, `${label(p.start)}: ${p.attempts} attempts, ${p.failures} failed`));
    root.append(bar);
    if (fh > 0) root.append(svg("rect", { x, y: height - pad - fh, width: barW, height: fh, class: "failures" }));
    if (i % Math.ceil(points.length / 8) === 0) {
      root.append(svg("text", { x, y: height - pad + 14 }, label(p.start)));
    }
  });
  return root;
}
