// Boxes over images. An SVG with viewBox = the original image size and preserveAspectRatio "meet"
// sits on an <img> with object-fit: contain, so boxes in original pixels line up at any display size.

const SVG_NS = "http://www.w3.org/2000/svg";

export const STATUS_COLORS = { TP: "#22c55e", FP: "#f43f5e", FN: "#f59e0b" };

export const ERROR_LABELS = {
  cls: "classification",
  loc: "localisation",
  both: "cls + loc",
  dupe: "duplicate",
  bkg: "background",
  miss: "missed",
};

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function fmt(v, digits = 2) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  if (typeof v === "number" && !Number.isInteger(v)) return v.toFixed(digits);
  return String(v);
}

/** A short description of one object, for tooltips and the detail table. */
export function describe(obj) {
  const parts = [`${obj.kind === "gt" ? "GT" : "Pred"} · ${obj.class_name}`, obj.status];
  if (obj.confidence !== null && obj.confidence !== undefined) parts.push(`conf ${fmt(obj.confidence)}`);
  if (obj.iou !== null && obj.iou !== undefined) parts.push(`IoU ${fmt(obj.iou)}`);
  if (obj.error_type) parts.push(ERROR_LABELS[obj.error_type] || obj.error_type);
  return parts.join(" · ");
}

/** Which objects to draw: TP ground truths duplicate their TP prediction, so they are optional. */
export function visibleObjects(objects, { showTpGt = false, statuses = null } = {}) {
  return (objects || []).filter((o) => {
    if (statuses && !statuses.has(o.status)) return false;
    if (!showTpGt && o.kind === "gt" && o.status === "TP") return false;
    return true;
  });
}

/**
 * Image + box overlay. ``row``: {width, height, objects}; ``src``: the image URL.
 * ``onHover(obj, event)`` gets the hovered object (or null).
 */
export function boxedImage(row, src, { labels = false, showTpGt = false, statuses = null, onHover } = {}) {
  const wrap = el("div", { class: "boxed" });
  const img = el("img", { src, alt: row.global_key || `row ${row.data_row_id}`, loading: "lazy", decoding: "async" });
  img.addEventListener("error", () => wrap.classList.add("img-missing"));
  wrap.append(img);
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${row.width} ${row.height}`);
  svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
  svg.classList.add("overlay");
  const objs = visibleObjects(row.objects, { showTpGt, statuses });
  // Draw GT first so predictions sit on top.
  objs.sort((a, b) => (a.kind === b.kind ? 0 : a.kind === "gt" ? -1 : 1));
  for (const o of objs) {
    const [x, y, w, h] = o.box;
    const g = document.createElementNS(SVG_NS, "g");
    g.classList.add("obj", `st-${o.status}`, `kind-${o.kind}`);
    g.dataset.status = o.status;
    g.dataset.kind = o.kind;
    const r = document.createElementNS(SVG_NS, "rect");
    r.setAttribute("x", x);
    r.setAttribute("y", y);
    r.setAttribute("width", Math.max(w, 1));
    r.setAttribute("height", Math.max(h, 1));
    r.setAttribute("vector-effect", "non-scaling-stroke");
    r.setAttribute("stroke", STATUS_COLORS[o.status] || "#94a3b8");
    const title = document.createElementNS(SVG_NS, "title");
    title.textContent = describe(o);
    r.append(title);
    g.append(r);
    if (labels && !(o.kind === "gt" && o.status === "TP")) {
      const t = document.createElementNS(SVG_NS, "text");
      t.setAttribute("x", x + 2);
      t.setAttribute("y", Math.max(y - 4, 12));
      t.setAttribute("fill", STATUS_COLORS[o.status] || "#94a3b8");
      t.style.fontSize = `${Math.max(row.width, row.height) / 45}px`;
      const conf = o.kind === "pred" && o.confidence !== null && o.confidence !== undefined;
      t.textContent = `${o.class_name}${conf ? ` ${fmt(o.confidence)}` : ""}`;
      g.append(t);
    }
    if (onHover) {
      g.addEventListener("mouseenter", (e) => onHover(o, e));
      g.addEventListener("mousemove", (e) => onHover(o, e));
      g.addEventListener("mouseleave", () => onHover(null));
    }
    svg.append(g);
  }
  wrap.append(svg);
  return wrap;
}

let tooltipNode = null;

/** One floating tooltip for the whole page, following the pointer. */
export function showTooltip(obj, event) {
  if (!tooltipNode) {
    tooltipNode = el("div", { class: "tooltip", role: "tooltip" });
    document.body.append(tooltipNode);
  }
  if (!obj) {
    tooltipNode.hidden = true;
    return;
  }
  tooltipNode.hidden = false;
  tooltipNode.replaceChildren(
    el("div", { class: "tt-head" }, el("span", { class: `dot st-${obj.status}` }), `${obj.class_name}`),
    el("div", {}, `${obj.kind === "gt" ? "Ground truth" : "Prediction"} · ${obj.status}`),
    obj.confidence !== null && obj.confidence !== undefined ? el("div", {}, `confidence ${fmt(obj.confidence, 3)}`) : null,
    obj.iou !== null && obj.iou !== undefined ? el("div", {}, `IoU ${fmt(obj.iou, 3)}`) : null,
    obj.error_type ? el("div", {}, `error: ${ERROR_LABELS[obj.error_type] || obj.error_type}`) : null,
  );
  const x = Math.min(event.clientX + 14, window.innerWidth - 220);
  const y = Math.min(event.clientY + 14, window.innerHeight - 110);
  tooltipNode.style.left = `${x}px`;
  tooltipNode.style.top = `${y}px`;
}

export function legend() {
  return el(
    "div",
    { class: "legend", "aria-label": "Box colours" },
    el("span", { class: "lg lg-TP", title: "true positive: a prediction matched to a ground truth" }, "TP"),
    el("span", { class: "lg lg-FP", title: "false positive: an unmatched prediction" }, "FP"),
    el("span", { class: "lg lg-FN", title: "false negative: a missed ground truth (dashed)" }, "FN missed"),
  );
}
