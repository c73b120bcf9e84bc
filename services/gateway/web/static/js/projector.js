// Projector view: the 2-D embedding map on a Canvas2D, drawn pixel by pixel into an ImageData (100k
// points redraw in a few ms), zoom on the wheel, pan by dragging, lasso (shift-drag or lasso mode) into
// the selection, which opens in the gallery.

import { api } from "./api.js";
import { el, fmt } from "./boxes.js";
import { PALETTE } from "./charts.js";
import { METRICS } from "./gallery.js";
import { NULL_RGB, RAMP, hexRgb, pointsInPolygon, rampColor, valuesFromGallery } from "./scatter.js";
import { navigate, on, setSelection, state } from "./state.js";

export function renderProjector(root, runId, params) {
  const colorBy = params.get("color") || "mean_iou";
  const P = { n: 0, ids: null, xs: null, ys: null, vals: null, labels: null, colors: null };
  const view = { cx: 0, cy: 0, scale: 1, zoom: 1, fitScale: 1, mode: "pan", lasso: null, drag: null, hover: -1 };

  const projSel = el("select", { name: "projection", "aria-label": "projection" });
  const colorSel = el(
    "select",
    { name: "color-by", "aria-label": "colour by" },
    el("optgroup", { label: "metric" }, ...METRICS.map(([v, t]) => el("option", { value: v, selected: v === colorBy }, t))),
    el("option", { value: "class", selected: colorBy === "class" }, "class (most frequent GT)"),
    el("option", { value: "split", selected: colorBy === "split" }, "split"),
  );
  colorSel.addEventListener("change", () => {
    const p = { color: colorSel.value };
    if (params.get("projection")) p.projection = params.get("projection");
    navigate(`runs/${runId}/projector`, p);
  });
  const modeBtn = el("button", { class: "btn", "data-testid": "lasso-mode", "aria-pressed": "false" }, "Lasso");
  const info = el("span", { class: "count", "data-testid": "projector-info" }, "…");
  const selInfo = el("span", { class: "count", "data-testid": "lasso-count" }, "");
  const openBtn = el("button", { class: "btn primary", disabled: true, "data-testid": "lasso-open" }, "Open selection in gallery");
  const legendBox = el("div", { class: "proj-legend" });
  const canvas = el("canvas", { class: "proj-canvas", "data-testid": "projector-canvas" });
  const overlay = el("canvas", { class: "proj-overlay" });
  const hoverBox = el("div", { class: "proj-hover", hidden: true });
  const stage = el("div", { class: "proj-stage" }, canvas, overlay, hoverBox, legendBox);
  const status = el("div", { class: "grid-status" });
  root.replaceChildren(
    el(
      "div",
      { class: "projector" },
      el(
        "div",
        { class: "toolbar" },
        el("span", { class: "tb-label" }, "Map"),
        projSel,
        el("span", { class: "tb-label" }, "Colour"),
        colorSel,
        el("span", { class: "sep" }),
        modeBtn,
        el("button", { class: "btn ghost", onclick: () => { fit(); draw(); } }, "Reset view"),
        el("span", { class: "hint" }, "wheel: zoom · drag: pan · shift-drag: lasso"),
        el("span", { class: "grow" }),
        selInfo,
        openBtn,
        info,
      ),
      status,
      stage,
    ),
  );
  const setMode = (m) => {
    view.mode = m;
    modeBtn.classList.toggle("active", m === "lasso");
    modeBtn.setAttribute("aria-pressed", String(m === "lasso"));
    stage.classList.toggle("lasso", m === "lasso");
  };
  modeBtn.addEventListener("click", () => setMode(view.mode === "lasso" ? "pan" : "lasso"));
  openBtn.addEventListener("click", () => navigate(`runs/${runId}/gallery`, { selection: "1", label: `projector lasso · ${state.selection.size} rows`, sort: "mean_iou:asc:" }));

  const ctx = canvas.getContext("2d");
  const octx = overlay.getContext("2d");
  let W = 0;
  let H = 0;
  const dpr = window.devicePixelRatio || 1;
  const resize = () => {
    const r = stage.getBoundingClientRect();
    W = Math.max(Math.floor(r.width), 100);
    H = Math.max(Math.floor(r.height), 100);
    for (const c of [canvas, overlay]) {
      c.width = Math.floor(W * dpr);
      c.height = Math.floor(H * dpr);
      c.style.width = `${W}px`;
      c.style.height = `${H}px`;
    }
  };
  const toScreen = (x, y) => [(x - view.cx) * view.scale + W / 2, H / 2 - (y - view.cy) * view.scale];
  const toData = (sx, sy) => [(sx - W / 2) / view.scale + view.cx, (H / 2 - sy) / view.scale + view.cy];

  function fit() {
    if (!P.n) return;
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let i = 0; i < P.n; i++) {
      x0 = Math.min(x0, P.xs[i]); x1 = Math.max(x1, P.xs[i]);
      y0 = Math.min(y0, P.ys[i]); y1 = Math.max(y1, P.ys[i]);
    }
    view.cx = (x0 + x1) / 2;
    view.cy = (y0 + y1) / 2;
    view.scale = 0.9 * Math.min(W / Math.max(x1 - x0, 1e-9), H / Math.max(y1 - y0, 1e-9));
    view.fitScale = view.scale;
    view.zoom = 1;
  }

  function draw() {
    const t0 = performance.now();
    const w = canvas.width;
    const h = canvas.height;
    const img = ctx.createImageData(w, h);
    const buf = new Uint32Array(img.data.buffer);
    buf.fill(0xff1a1512); // background #12151a (ABGR little-endian)
    // Points grow when few or zoomed in; 2 device px at 100k.
    const base = P.n < 2000 ? 7 : P.n < 20000 ? 4 : 2;
    const size = Math.round(Math.min(base * dpr * (view.zoom > 4 ? 1.5 : 1), 9));
    const sel = state.selection;
    const plot = (i, abgr, sz) => {
      const [sx, sy] = toScreen(P.xs[i], P.ys[i]);
      const px = Math.floor(sx * dpr - sz / 2);
      const py = Math.floor(sy * dpr - sz / 2);
      if (px < 0 || py < 0 || px >= w - sz || py >= h - sz) return;
      for (let dy = 0; dy < sz; dy++) {
        const o = (py + dy) * w + px;
        for (let dx = 0; dx < sz; dx++) buf[o + dx] = abgr;
      }
    };
    const hasSel = sel.size > 0;
    for (let i = 0; i < P.n; i++) {
      if (hasSel && sel.has(P.ids[i])) continue;
      let c = P.colors[i];
      if (hasSel) c = (c & 0x00ffffff) | 0x80000000; // fade the rest
      plot(i, c, size);
    }
    if (hasSel) for (let i = 0; i < P.n; i++) if (sel.has(P.ids[i])) plot(i, 0xffffffff, size + (size > 3 ? 0 : 1));
    ctx.putImageData(img, 0, 0);
    drawOverlay();
    stage.dataset.drawMs = (performance.now() - t0).toFixed(2); // read by the benchmark
  }

  function drawOverlay() {
    octx.setTransform(dpr, 0, 0, dpr, 0, 0);
    octx.clearRect(0, 0, W, H);
    if (view.lasso && view.lasso.length > 1) {
      octx.beginPath();
      octx.moveTo(view.lasso[0][0], view.lasso[0][1]);
      for (const [x, y] of view.lasso) octx.lineTo(x, y);
      octx.closePath();
      octx.fillStyle = "rgba(96,165,250,0.12)";
      octx.strokeStyle = "#60a5fa";
      octx.lineWidth = 1.5;
      octx.setLineDash([5, 4]);
      octx.fill();
      octx.stroke();
      octx.setLineDash([]);
    }
    if (view.hover >= 0) {
      const [sx, sy] = toScreen(P.xs[view.hover], P.ys[view.hover]);
      octx.strokeStyle = "#fff";
      octx.lineWidth = 1.5;
      octx.beginPath();
      octx.arc(sx, sy, 6, 0, Math.PI * 2);
      octx.stroke();
    }
  }

  function colorize() {
    P.colors = new Uint32Array(P.n);
    const abgr = ([r, g, b]) => ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0;
    const categorical = P.labels && P.labels.some((x) => x !== null && x !== undefined);
    if (categorical) {
      const names = [...new Set(P.labels.filter((x) => x !== null && x !== undefined))].sort();
      const colorOf = new Map(names.map((n, i) => [n, abgr(hexRgb(PALETTE[i % PALETTE.length]))]));
      for (let i = 0; i < P.n; i++) P.colors[i] = colorOf.get(P.labels[i]) ?? abgr(NULL_RGB);
      legendBox.replaceChildren(
        ...names.slice(0, 16).map((n, i) => el("span", {}, el("i", { style: `background:${PALETTE[i % PALETTE.length]}` }), n)),
      );
      return;
    }
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < P.n; i++) {
      const v = P.vals[i];
      if (!Number.isNaN(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    }
    // The ramp spans the values present (more contrast than a fixed [0, 1]); the legend shows the range.
    const [a, b] = [lo, hi === lo ? lo + 1 : hi];
    for (let i = 0; i < P.n; i++) {
      const v = P.vals[i];
      P.colors[i] = abgr(Number.isNaN(v) ? NULL_RGB : rampColor((v - a) / (b - a)));
    }
    if (lo === Infinity) {
      legendBox.replaceChildren(el("span", {}, `no ${colorBy} values on the points`));
      return;
    }
    legendBox.replaceChildren(
      el("span", {}, fmt(a)),
      el("span", { class: "ramp", style: `background:linear-gradient(90deg,${RAMP.map((c) => `rgb(${c})`).join(",")})` }),
      el("span", {}, fmt(b)),
      el("span", {}, el("i", { style: `background:rgb(${NULL_RGB})` }), "none"),
    );
  }

  // Spatial hash for hover: cells of 8 screen px, rebuilt lazily per view.
  let hash = null;
  let hashKey = "";
  function nearest(sx, sy) {
    const key = `${view.cx},${view.cy},${view.scale},${W},${H}`;
    if (key !== hashKey) {
      hash = new Map();
      for (let i = 0; i < P.n; i++) {
        const [px, py] = toScreen(P.xs[i], P.ys[i]);
        if (px < 0 || py < 0 || px > W || py > H) continue;
        const k = ((px / 8) | 0) * 4096 + ((py / 8) | 0);
        if (!hash.has(k)) hash.set(k, []);
        hash.get(k).push(i);
      }
      hashKey = key;
    }
    let best = -1;
    let bd = 64;
    const cx = (sx / 8) | 0;
    const cy = (sy / 8) | 0;
    for (let gx = cx - 1; gx <= cx + 1; gx++)
      for (let gy = cy - 1; gy <= cy + 1; gy++)
        for (const i of hash.get(gx * 4096 + gy) || []) {
          const [px, py] = toScreen(P.xs[i], P.ys[i]);
          const d = (px - sx) ** 2 + (py - sy) ** 2;
          if (d < bd) { bd = d; best = i; }
        }
    return best;
  }

  function finishLasso() {
    const poly = view.lasso.map(([x, y]) => toData(x, y));
    view.lasso = null;
    if (poly.length < 3) { draw(); return; }
    const t0 = performance.now();
    const ids = pointsInPolygon(P.xs, P.ys, P.n, poly).map((i) => P.ids[i]);
    stage.dataset.lassoMs = (performance.now() - t0).toFixed(2);
    setSelection(ids);
  }

  const pos = (e) => {
    const r = overlay.getBoundingClientRect();
    return [e.clientX - r.left, e.clientY - r.top];
  };
  overlay.addEventListener("pointerdown", (e) => {
    overlay.setPointerCapture(e.pointerId);
    const p = pos(e);
    if (view.mode === "lasso" || e.shiftKey) view.lasso = [p];
    else view.drag = { p, cx: view.cx, cy: view.cy };
  });
  overlay.addEventListener("pointermove", (e) => {
    const [sx, sy] = pos(e);
    if (view.lasso) {
      view.lasso.push([sx, sy]);
      drawOverlay();
      return;
    }
    if (view.drag) {
      view.cx = view.drag.cx - (sx - view.drag.p[0]) / view.scale;
      view.cy = view.drag.cy + (sy - view.drag.p[1]) / view.scale;
      draw();
      return;
    }
    const i = nearest(sx, sy);
    if (i !== view.hover) {
      view.hover = i;
      drawOverlay();
    }
    if (i >= 0) {
      hoverBox.hidden = false;
      hoverBox.style.left = `${sx + 12}px`;
      hoverBox.style.top = `${sy + 12}px`;
      const v = P.labels && P.labels[i] != null ? P.labels[i] : fmt(P.vals[i], 3);
      hoverBox.textContent = `row ${P.ids[i]} · ${colorBy} ${v}`;
    } else hoverBox.hidden = true;
  });
  const up = () => {
    if (view.lasso) finishLasso();
    view.drag = null;
  };
  overlay.addEventListener("pointerup", up);
  overlay.addEventListener("pointercancel", up);
  overlay.addEventListener("dblclick", (e) => {
    if (view.hover >= 0) {
      setSelection([P.ids[view.hover]]);
      navigate(`runs/${runId}/gallery`, { selection: "1", label: `row ${P.ids[view.hover]}` });
    }
    e.preventDefault();
  });
  overlay.addEventListener(
    "wheel",
    (e) => {
      e.preventDefault();
      const [sx, sy] = pos(e);
      const [dx, dy] = toData(sx, sy);
      view.scale *= Math.exp(-e.deltaY * 0.0015);
      view.zoom = view.scale / view.fitScale;
      // Keep the data point under the cursor fixed.
      view.cx = dx - (sx - W / 2) / view.scale;
      view.cy = dy - (H / 2 - sy) / view.scale;
      draw();
    },
    { passive: false },
  );

  const offSel = on("selection", (sel) => {
    selInfo.textContent = sel.size ? `${sel.size} selected` : "";
    openBtn.disabled = sel.size === 0;
    if (P.n) draw();
  });
  selInfo.textContent = state.selection.size ? `${state.selection.size} selected` : "";
  openBtn.disabled = state.selection.size === 0;
  const ro = new ResizeObserver(() => {
    resize();
    if (P.n) draw();
  });
  ro.observe(stage);

  let cancelled = false;
  async function load(projection) {
    status.textContent = "Loading points…";
    const ids = [];
    const xs = [];
    const ys = [];
    const vals = [];
    const labels = [];
    let cursor = null;
    const t0 = performance.now();
    do {
      const page = await api.projectionPoints(projection.id, cursor, 20000, colorBy);
      if (cancelled) return;
      for (const p of page.points || []) {
        ids.push(Number(p.data_row_id));
        xs.push(p.x);
        ys.push(p.y);
        const v = p.value ?? (p.metrics ? p.metrics[colorBy] : undefined) ?? p[colorBy];
        vals.push(typeof v === "number" ? v : NaN);
        labels.push(typeof v === "string" ? v : (p.label ?? null));
      }
      cursor = page.next_cursor || null;
      status.textContent = `Loading points… ${ids.length}`;
    } while (cursor);
    const loadMs = Math.round(performance.now() - t0);
    Object.assign(P, {
      n: ids.length,
      ids,
      xs: Float64Array.from(xs),
      ys: Float64Array.from(ys),
      vals: Float64Array.from(vals),
      labels: labels.some((l) => l !== null) ? labels : null,
    });
    colorize();
    resize();
    fit();
    draw();
    status.textContent = "";
    info.textContent = `${P.n.toLocaleString()} points · ${loadMs} ms`;
    info.dataset.points = String(P.n);
    stage.dataset.ready = "true";
    const hasValues = P.labels !== null || vals.some((v) => !Number.isNaN(v));
    if (!hasValues && P.n) {
      const byId = await valuesFromGallery(runId, colorBy, () => cancelled).catch(() => new Map());
      if (cancelled || !byId.size) return;
      const categorical = colorBy === "class" || colorBy === "split";
      if (categorical) P.labels = P.ids.map((id) => byId.get(id) ?? null);
      else for (let i = 0; i < P.n; i++) {
        const v = byId.get(P.ids[i]);
        P.vals[i] = typeof v === "number" ? v : NaN;
      }
      colorize();
      draw();
      stage.dataset.colored = "true";
    }
  }

  const READY = new Set(["ready", "succeeded", "done"]);
  const pinned = params.get("projection");
  (pinned ? api.projection(pinned).then((p) => [p]) : api.projections(runId))
    .then((list) => {
      const ready = list.filter((p) => !p.status || READY.has(p.status));
      if (!ready.length) {
        const pending = list.find((p) => p.status === "queued" || p.status === "running");
        status.replaceChildren(
          el(
            "div",
            { class: "empty" },
            pending ? `Projection #${pending.id} is ${pending.status}; reload in a minute. ` : "No projection for this run yet. ",
            pending
              ? null
              : el("button", {
                  class: "btn",
                  onclick: () =>
                    api
                      .createProjection({ modelRunId: runId })
                      .then((p) => navigate(`runs/${runId}/projector`, { color: colorBy, projection: String(p.id) }))
                      .catch((e) => (status.textContent = e.message)),
                }, "Compute one (UMAP)"),
          ),
        );
        return;
      }
      for (const p of ready) projSel.append(el("option", { value: String(p.id) }, `${p.method || "map"} #${p.id}${p.num_points ? ` · ${p.num_points}` : ""}`));
      projSel.addEventListener("change", () => navigate(`runs/${runId}/projector`, { color: colorBy, projection: projSel.value }));
      projSel.value = String(ready[ready.length - 1].id);
      return load(ready[ready.length - 1]);
    })
    .catch((e) => {
      // A server without the projection list still serves maps by id (links carry ?projection=).
      const byId = el("input", { type: "number", name: "projection-id", placeholder: "projection id", min: "1" });
      status.replaceChildren(
        el("div", { class: "error-banner" }, `Projector: ${e.message}`),
        el(
          "div",
          { class: "empty" },
          "Open a map by id: ",
          byId,
          el("button", { class: "btn", onclick: () => byId.value && navigate(`runs/${runId}/projector`, { color: colorBy, projection: byId.value }) }, "Open"),
        ),
      );
    });

  return () => {
    cancelled = true;
    ro.disconnect();
    offSel();
  };
}
