// Scatter-plot helpers of the projector: colour ramp, lasso hit test, per-row colour values.

import { api } from "./api.js";

// A perceptual ramp (viridis-like) for metric values in [0, 1], low = dark purple, high = yellow.
export const RAMP = [
  [68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
  [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37],
];
export const NULL_RGB = [100, 110, 125];

export function rampColor(t) {
  if (t === null || t === undefined || Number.isNaN(t)) return NULL_RGB;
  const u = Math.min(Math.max(t, 0), 1) * (RAMP.length - 1);
  const i = Math.min(Math.floor(u), RAMP.length - 2);
  const f = u - i;
  return RAMP[i].map((c, k) => Math.round(c + (RAMP[i + 1][k] - c) * f));
}

export function hexRgb(h) {
  const n = parseInt(h.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

/** Indices of the points inside ``poly`` ([[x, y], ...] in data space): bbox test, then ray casting. */
export function pointsInPolygon(xs, ys, n, poly) {
  const m = poly.length;
  const px = new Float64Array(m);
  const py = new Float64Array(m);
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let k = 0; k < m; k++) {
    px[k] = poly[k][0];
    py[k] = poly[k][1];
    x0 = Math.min(x0, px[k]); x1 = Math.max(x1, px[k]);
    y0 = Math.min(y0, py[k]); y1 = Math.max(y1, py[k]);
  }
  const out = [];
  for (let i = 0; i < n; i++) {
    const x = xs[i];
    const y = ys[i];
    if (x < x0 || x > x1 || y < y0 || y > y1) continue;
    let inside = false;
    for (let a = 0, b = m - 1; a < m; b = a++) {
      if (py[a] > y !== py[b] > y && x < ((px[b] - px[a]) * (y - py[a])) / (py[b] - py[a]) + px[a]) inside = !inside;
    }
    if (inside) out.push(i);
  }
  return out;
}

// Gallery metric names -> keys of a gallery row's "metrics".
const METRIC_KEY = { confidence: "mean_conf", min_confidence: "min_conf", max_confidence: "max_conf" };

/**
 * Per-row colour values read from the gallery, for points that carry none (capped: 50 pages of 200).
 * ``colorBy``: a metric, "class" (most frequent ground-truth class) or "split".
 */
export async function valuesFromGallery(runId, colorBy, isCancelled) {
  const byId = new Map();
  let cursor = null;
  for (let page = 0; page < 50 && !isCancelled(); page++) {
    const res = await api.gallery(runId, { filter: { all: [] }, sort: { field: "data_row_id", order: "asc" }, limit: 200, cursor });
    for (const r of res.rows || []) {
      let v;
      if (colorBy === "split") v = r.split;
      else if (colorBy === "class") {
        const counts = {};
        for (const o of r.objects || []) if (o.kind === "gt") counts[o.class_name] = (counts[o.class_name] || 0) + 1;
        v = Object.entries(counts).sort((a, b) => b[1] - a[1])[0]?.[0] ?? null;
      } else v = (r.metrics || {})[METRIC_KEY[colorBy] || colorBy];
      byId.set(Number(r.data_row_id), v);
    }
    cursor = res.next_cursor;
    if (!cursor) break;
  }
  return byId;
}
