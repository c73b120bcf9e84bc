// App state shared by the views: the current run, its classes, and the row selection.
// Views navigate through the URL hash, so every gallery state (filter, sort, thresholds) is a link.

const listeners = new Map();

export function on(event, fn) {
  if (!listeners.has(event)) listeners.set(event, new Set());
  listeners.get(event).add(fn);
  return () => listeners.get(event).delete(fn);
}

export function emit(event, payload) {
  for (const fn of listeners.get(event) || []) fn(payload);
}

export const state = {
  runs: [],
  run: null, // {id, name, iou_threshold, confidence_threshold, ...}
  classes: [], // class names of the run
  selection: new Set(), // data_row_ids (numbers)
};

export function select(ids, on_ = true) {
  for (const id of ids) {
    if (on_) state.selection.add(Number(id));
    else state.selection.delete(Number(id));
  }
  emit("selection", state.selection);
}

export function clearSelection() {
  state.selection.clear();
  emit("selection", state.selection);
}

export function setSelection(ids) {
  state.selection = new Set(ids.map(Number));
  emit("selection", state.selection);
}

// --- URL hash routing -------------------------------------------------------------------------

/** Parses "#/runs/3/gallery?sort=mean_iou:asc" into {parts: ["runs","3","gallery"], params}. */
export function parseHash(hash = location.hash) {
  const raw = hash.replace(/^#\/?/, "");
  const [path, qs] = raw.split("?");
  return { parts: path.split("/").filter(Boolean), params: new URLSearchParams(qs || "") };
}

export function navigate(path, params) {
  const q = params ? new URLSearchParams(params).toString() : "";
  const next = `#/${path}${q ? `?${q}` : ""}`;
  if (location.hash === next) emit("route", parseHash(next));
  else location.hash = next;
}

// Gallery state <-> URL parameters. Filter conditions are JSON in the "f" parameter.
export function galleryParams({ conditions, sort, iou, conf, label }) {
  const p = {};
  if (conditions && conditions.length) p.f = JSON.stringify(conditions);
  if (sort && sort.field) p.sort = [sort.field, sort.order || "asc", sort.class_name || ""].join(":");
  if (iou !== undefined && iou !== null) p.iou = String(iou);
  if (conf !== undefined && conf !== null) p.conf = String(conf);
  if (label) p.label = label;
  return p;
}

export function readGalleryParams(params) {
  let conditions = [];
  try {
    conditions = params.get("f") ? JSON.parse(params.get("f")) : [];
  } catch {
    conditions = [];
  }
  let sort = null;
  if (params.get("sort")) {
    const [field, order, className] = params.get("sort").split(":");
    sort = { field, order: order || "asc" };
    if (className) sort.class_name = className;
  }
  const num = (k) => (params.get(k) === null || params.get(k) === "" ? null : Number(params.get(k)));
  return { conditions, sort, iou: num("iou"), conf: num("conf"), label: params.get("label") || "" };
}

/** The conditions of a filter object from the API ({all: [...]}, or one bare condition). */
export function conditionsOf(filter) {
  if (!filter) return [];
  if (Array.isArray(filter)) return filter;
  if (Array.isArray(filter.all)) return filter.all;
  if (filter.field) return [filter];
  return [];
}

export function openGallery(runId, { conditions, sort, label } = {}) {
  navigate(`runs/${runId}/gallery`, galleryParams({ conditions, sort, label }));
}
