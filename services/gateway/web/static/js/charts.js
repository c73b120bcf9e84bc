// Small SVG charts (no library): a clickable histogram and a line chart for PR / F1 curves.

const NS = "http://www.w3.org/2000/svg";

function s(tag, attrs = {}, text) {
  const n = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) n.setAttribute(k, v);
  if (text !== undefined) n.textContent = text;
  return n;
}

function tickText(v) {
  if (v === null || v === undefined) return "∅";
  if (Math.abs(v) >= 1000) return `${(v / 1000).toFixed(1)}k`;
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}

/**
 * Histogram of ``buckets`` [{lo, hi, count}]; ``onBucket(bucket)`` is called on a bar click.
 * Every bar is a focusable button-like rect with data-lo/data-hi/data-count for tests and a11y.
 */
export function histogram(buckets, { width = 320, height = 150, onBucket, title } = {}) {
  const m = { l: 34, r: 8, t: 18, b: 22 };
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart histogram", role: "img" });
  if (title) svg.append(s("text", { x: m.l, y: 12, class: "chart-title" }, title));
  const max = Math.max(1, ...buckets.map((b) => b.count));
  const iw = width - m.l - m.r;
  const ih = height - m.t - m.b;
  const bw = buckets.length ? iw / buckets.length : iw;
  for (const frac of [0, 0.5, 1]) {
    const y = m.t + ih - frac * ih;
    svg.append(s("line", { x1: m.l, x2: width - m.r, y1: y, y2: y, class: "grid-line" }));
    svg.append(s("text", { x: m.l - 4, y: y + 3, class: "axis", "text-anchor": "end" }, tickText(Math.round(frac * max))));
  }
  const ranged = buckets.filter((b) => b.lo !== null);
  const last = buckets.indexOf(ranged[ranged.length - 1]);
  buckets.forEach((b, i) => {
    const h = (b.count / max) * ih;
    const x = m.l + i * bw;
    const g = s("g", {
      class: `bar${b.count ? "" : " empty"}`,
      tabindex: b.count ? "0" : "-1",
      role: "button",
      "data-lo": b.lo,
      "data-hi": b.hi,
      "data-count": b.count,
      "aria-label": `${tickText(b.lo)} to ${tickText(b.hi)}: ${b.count} rows`,
    });
    g.append(s("rect", { x: x + 1, y: m.t, width: Math.max(bw - 2, 1), height: ih, class: "hit" }));
    g.append(s("rect", { x: x + 1, y: m.t + ih - h, width: Math.max(bw - 2, 1), height: Math.max(h, b.count ? 1 : 0), class: "fill" }));
    const range = b.lo === null ? "no value" : `[${tickText(b.lo)}, ${tickText(b.hi)}${i === last ? "]" : ")"}`;
    g.append(s("title", {}, `${range}: ${b.count} rows`));
    if (b.lo === null) {
      g.classList.add("nullbar");
      svg.append(s("text", { x: x + bw / 2, y: height - 6, class: "axis", "text-anchor": "middle" }, "∅"));
    }
    if (onBucket && b.count) {
      g.addEventListener("click", () => onBucket(b));
      g.addEventListener("keydown", (e) => e.key === "Enter" && onBucket(b));
    }
    svg.append(g);
  });
  if (ranged.length) {
    const xEnd = m.l + (last + 1) * bw;
    svg.append(s("text", { x: m.l, y: height - 6, class: "axis" }, tickText(ranged[0].lo)));
    svg.append(s("text", { x: xEnd, y: height - 6, class: "axis", "text-anchor": "end" }, tickText(ranged[ranged.length - 1].hi)));
  }
  return svg;
}

export const PALETTE = [
  "#60a5fa", "#f472b6", "#34d399", "#fbbf24", "#a78bfa", "#f87171", "#22d3ee", "#a3e635",
  "#fb923c", "#e879f9", "#2dd4bf", "#facc15", "#818cf8", "#4ade80", "#fda4af", "#93c5fd",
];

/** Line chart of series [{name, xs, ys}] on [0,1]x[0,1]. */
export function lineChart(series, { width = 420, height = 300, xLabel = "recall", yLabel = "precision" } = {}) {
  const m = { l: 40, r: 12, t: 12, b: 34 };
  const iw = width - m.l - m.r;
  const ih = height - m.t - m.b;
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart lines", role: "img" });
  const X = (v) => m.l + v * iw;
  const Y = (v) => m.t + ih - v * ih;
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    svg.append(s("line", { x1: X(0), x2: X(1), y1: Y(t), y2: Y(t), class: "grid-line" }));
    svg.append(s("line", { x1: X(t), x2: X(t), y1: Y(0), y2: Y(1), class: "grid-line" }));
    svg.append(s("text", { x: m.l - 4, y: Y(t) + 3, class: "axis", "text-anchor": "end" }, t.toFixed(2)));
    svg.append(s("text", { x: X(t), y: height - m.b + 14, class: "axis", "text-anchor": "middle" }, t.toFixed(2)));
  }
  svg.append(s("text", { x: m.l + iw / 2, y: height - 4, class: "axis-label", "text-anchor": "middle" }, xLabel));
  svg.append(
    s("text", { x: 10, y: m.t + ih / 2, class: "axis-label", "text-anchor": "middle", transform: `rotate(-90 10 ${m.t + ih / 2})` }, yLabel),
  );
  series.forEach((ser, i) => {
    const pts = [];
    for (let k = 0; k < Math.min(ser.xs.length, ser.ys.length); k++) {
      const x = ser.xs[k];
      const y = ser.ys[k];
      if (x === null || y === null || x === undefined || y === undefined || y < 0) continue;
      pts.push(`${X(x).toFixed(1)},${Y(y).toFixed(1)}`);
    }
    const color = ser.color || PALETTE[i % PALETTE.length];
    const p = s("polyline", { points: pts.join(" "), fill: "none", stroke: color, "stroke-width": 1.8, class: "series" });
    p.append(s("title", {}, ser.name));
    svg.append(p);
  });
  return svg;
}
