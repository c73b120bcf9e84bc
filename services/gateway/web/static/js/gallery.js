// Gallery view: filter panel, sort, threshold sliders, infinite scroll over keyset pages, detail view.

import { api } from "./api.js";
import { ERROR_LABELS, el, legend } from "./boxes.js";
import { conditionsOf, galleryParams, navigate, on, readGalleryParams, select, state } from "./state.js";
import { closeDetail, openDetail, refreshSelected, tile } from "./tiles.js";

export const METRICS = [
  ["mean_iou", "IoU (mean of matches)"],
  ["confidence", "confidence (mean)"],
  ["min_confidence", "confidence (min)"],
  ["max_confidence", "confidence (max)"],
  ["precision", "precision"],
  ["recall", "recall"],
  ["f1", "F1"],
  ["tp", "true positives"],
  ["fp", "false positives"],
  ["fn", "false negatives"],
  ["num_gt", "GT boxes"],
  ["num_pred", "predicted boxes"],
];
const METRIC_LABEL = Object.fromEntries(METRICS);
const SPLITS = ["train", "validation", "test", "unassigned"];
const PAGE = 60;

/** A readable label for one filter condition. */
export function describeCondition(c) {
  const v = c.value;
  const cls = c.class_name ? ` [${c.class_name}]` : "";
  const name = METRIC_LABEL[c.field] || c.field.replace(/_/g, " ");
  const show = (x) => (Array.isArray(x) ? x.join(", ") : typeof x === "object" && x !== null ? "…" : String(x));
  switch (c.op) {
    case "between":
      return `${name}${cls} ∈ [${v[0]}, ${v[1]}]`;
    case "lt":
      return `${name}${cls} < ${v}`;
    case "lte":
      return `${name}${cls} ≤ ${v}`;
    case "gt":
      return `${name}${cls} > ${v}`;
    case "gte":
      return `${name}${cls} ≥ ${v}`;
    case "ne":
      return `${name}${cls} ≠ ${show(v)}`;
    case "in":
      return `${name}${cls} ∈ {${show(v)}}`;
    case "is_null":
      return `${name}${cls} is empty`;
    case "not_null":
      return `${name}${cls} is set`;
    default:
      if (c.field === "similar_to") return `similar to ${(v.data_row_ids || []).length} rows`;
      return `${name}${cls} = ${show(v)}`;
  }
}

function field(label, control) {
  return el("label", { class: "field" }, el("span", {}, label), control);
}

function options(list, selected) {
  return list.map(([v, t]) => el("option", { value: v, selected: v === selected }, t));
}

export function renderGallery(root, runId, params) {
  const run = state.run;
  const g = readGalleryParams(params);
  const iou = g.iou ?? run?.iou_threshold ?? 0.5;
  const conf = g.conf ?? run?.confidence_threshold ?? 0.5;
  const conditions = g.conditions;
  const sort = g.sort || { field: "mean_iou", order: "asc" };
  const view = { rows: [], cursor: null, done: false, loading: false, total: null, controller: null, anchor: null };
  // "selection=1": restrict to the current selection (a projector lasso, a similarity result).
  const fromSelection = params.get("selection") === "1" && state.selection.size > 0;
  const selectionIds = fromSelection ? [...state.selection] : [];
  const allConditions = fromSelection
    ? [...conditions, { field: "data_row_id", op: "in", value: selectionIds }]
    : conditions;
  state.gallery = { runId, conditions: allConditions };

  const go = (patch) => {
    const keepSel = fromSelection && patch.selection !== false;
    const p = galleryParams({ conditions, sort, iou, conf, label: g.label, ...patch });
    if (keepSel) p.selection = "1";
    navigate(`runs/${runId}/gallery`, p);
  };

  // --- filter panel ---
  const classOpts = state.classes.map((c) => [c, c]);
  const metricSel = el("select", { name: "metric" }, ...options(METRICS, "mean_iou"));
  const metricClass = el("select", { name: "metric-class" }, ...options([["", "all classes"], ...classOpts], ""));
  const lo = el("input", { type: "number", step: "0.05", placeholder: "min", name: "min" });
  const hi = el("input", { type: "number", step: "0.05", placeholder: "max", name: "max" });
  const addRange = () => {
    const a = lo.value === "" ? null : Number(lo.value);
    const b = hi.value === "" ? null : Number(hi.value);
    if (a === null && b === null) return;
    const c = { field: metricSel.value };
    if (a !== null && b !== null) Object.assign(c, { op: "between", value: [a, b] });
    else if (a !== null) Object.assign(c, { op: "gte", value: a });
    else Object.assign(c, { op: "lte", value: b });
    if (metricClass.value) c.class_name = metricClass.value;
    go({ conditions: [...conditions, c] });
  };
  const classSel = el("select", { name: "class" }, ...options([["", "any class"], ...classOpts], ""));
  const classWhere = el(
    "select",
    { name: "class-where" },
    ...options([["class_in_gt", "in ground truth"], ["class_in_pred", "in predictions"]], "class_in_gt"),
  );
  const splitSel = el("select", { name: "split" }, ...options([["", "any split"], ...SPLITS.map((s) => [s, s])], ""));
  const errSel = el(
    "select",
    { name: "error-type" },
    ...options([["", "any error"], ...Object.entries(ERROR_LABELS)], ""),
  );
  const sliceSel = el("select", { name: "slice" }, el("option", { value: "" }, "no slice"));
  api
    .slices()
    .then((slices) => {
      for (const s of slices) sliceSel.append(el("option", { value: String(s.id) }, s.name));
    })
    .catch(() => {});
  const addSimple = (fieldName, value, op = "eq") => {
    if (value === "" || value === null) return;
    const rest = conditions.filter((c) => c.field !== fieldName);
    go({ conditions: [...rest, { field: fieldName, op, value }] });
  };
  const unlabeled = el("input", {
    type: "checkbox",
    name: "annotation-none",
    checked: conditions.some((c) => c.field === "annotation" && c.value === "none"),
  });
  unlabeled.addEventListener("change", () => {
    const rest = conditions.filter((c) => c.field !== "annotation");
    go({ conditions: unlabeled.checked ? [...rest, { field: "annotation", op: "eq", value: "none" }] : rest });
  });

  const chips = el(
    "div",
    { class: "chips", "data-testid": "active-filters" },
    ...conditions.map((c, i) =>
      el(
        "span",
        { class: "chip" },
        describeCondition(c),
        el("button", {
          class: "chip-x",
          title: "remove",
          "aria-label": `remove filter ${describeCondition(c)}`,
          onclick: () => go({ conditions: conditions.filter((_, j) => j !== i) }),
        }, "×"),
      ),
    ),
    fromSelection
      ? el(
          "span",
          { class: "chip sel" },
          `in selection (${selectionIds.length} rows)`,
          el("button", { class: "chip-x", title: "remove", onclick: () => go({ selection: false, label: "" }) }, "×"),
        )
      : null,
    conditions.length || fromSelection
      ? el("button", { class: "btn link", onclick: () => go({ conditions: [], label: "", selection: false }) }, "clear all")
      : null,
  );

  // Error slices of the run (auto-slices): one click applies their filter and sort.
  const autoBox = el("div", { class: "auto-slices", "data-testid": "auto-slices" });
  api
    .autoSlices(runId)
    .then((list) => {
      autoBox.replaceChildren(
        ...list.map((a) =>
          el(
            "button",
            {
              class: "auto-slice",
              title: a.description || a.name,
              onclick: () => go({ conditions: conditionsOf(a.filter), sort: a.sort && a.sort.field ? a.sort : sort, label: a.name, selection: false }),
            },
            el("span", {}, a.name),
            el("span", { class: "count" }, String(a.count ?? "")),
          ),
        ),
      );
    })
    .catch(() => autoBox.remove());

  const panel = el(
    "aside",
    { class: "filters", "aria-label": "Filters" },
    el("h3", {}, "Filters"),
    g.label ? el("div", { class: "origin" }, `from ${g.label}`) : null,
    chips,
    el("h4", {}, "Error slices"),
    autoBox,
    el("h4", {}, "Metric range"),
    field("metric", metricSel),
    field("for class", metricClass),
    el("div", { class: "row2" }, lo, hi),
    el("button", { class: "btn", onclick: addRange }, "Add range"),
    el("h4", {}, "Class"),
    field("class", classSel),
    field("where", classWhere),
    el("button", {
      class: "btn",
      "data-testid": "apply-class",
      onclick: () => classSel.value && addSimple(classWhere.value, [classSel.value], "in"),
    }, "Apply class"),
    el("h4", {}, "Row"),
    field("split", splitSel),
    field("error type", errSel),
    field("slice", sliceSel),
    el("label", { class: "check" }, unlabeled, "annotation is none (unlabeled)"),
  );
  splitSel.addEventListener("change", () => addSimple("split", splitSel.value));
  errSel.addEventListener("change", () => addSimple("error_type", errSel.value));
  sliceSel.addEventListener("change", () => addSimple("slice_id", Number(sliceSel.value)));

  // --- toolbar: sort, thresholds, legend, count ---
  const sortField = el("select", { name: "sort-field", "aria-label": "sort by" }, ...options(METRICS, sort.field));
  const sortOrder = el(
    "select",
    { name: "sort-order", "aria-label": "sort order" },
    ...options([["asc", "ascending"], ["desc", "descending"]], sort.order),
  );
  const sortClass = el(
    "select",
    { name: "sort-class", "aria-label": "sort class" },
    ...options([["", "all classes"], ...classOpts], sort.class_name || ""),
  );
  const applySort = () => {
    const s = { field: sortField.value, order: sortOrder.value };
    if (sortClass.value) s.class_name = sortClass.value;
    go({ sort: s });
  };
  for (const s of [sortField, sortOrder, sortClass]) s.addEventListener("change", applySort);

  const slider = (name, label, value, min, max, step) => {
    const input = el("input", { type: "range", name, min, max, step, value, "aria-label": label });
    const out = el("output", {}, Number(value).toFixed(2));
    let t = null;
    input.addEventListener("input", () => {
      out.textContent = Number(input.value).toFixed(2);
      clearTimeout(t);
      t = setTimeout(() => go({ [name]: Number(input.value) }), 300);
    });
    return el("label", { class: "slider" }, el("span", {}, label), input, out);
  };
  const count = el("span", { class: "count", "data-testid": "gallery-count" }, "…");
  const toolbar = el(
    "div",
    { class: "toolbar" },
    el("span", { class: "tb-label" }, "Sort"),
    sortField,
    sortOrder,
    sortClass,
    el("span", { class: "sep" }),
    slider("iou", "IoU ≥", iou, 0.5, 0.95, 0.05),
    slider("conf", "conf ≥", conf, 0, 1, 0.05),
    el("span", { class: "sep" }),
    legend(),
    el("span", { class: "grow" }),
    el("button", { class: "btn ghost", onclick: () => select(view.rows.map((r) => r.data_row_id)) }, "Select loaded"),
    count,
  );

  // --- grid with infinite scroll ---
  const grid = el("div", { class: "grid", "data-testid": "gallery-grid" });
  const sentinel = el("div", { class: "sentinel" }, "");
  const status = el("div", { class: "grid-status" });
  const scroller = el("div", { class: "grid-scroll" }, grid, status, sentinel);
  const main = el("section", { class: "gallery-main" }, toolbar, scroller);
  root.replaceChildren(el("div", { class: "gallery" }, panel, main));

  const filter = () => ({ all: allConditions });
  const updateCount = () => {
    const n = view.rows.length;
    if (view.total !== null && view.total !== undefined) count.textContent = `${view.total} rows`;
    else count.textContent = view.done ? `${n} rows` : `${n}+ rows`;
    count.dataset.loaded = String(n);
    count.dataset.done = String(view.done);
  };
  const indexOf = (row) => view.rows.findIndex((r) => r.data_row_id === row.data_row_id);
  const thresholds = { iou: g.iou, conf: g.conf };
  const openAt = (i) => {
    if (i < 0 || i >= view.rows.length) return;
    openDetail(view.rows[i], {
      runId,
      thresholds,
      nav: { prev: () => openAt(i - 1), next: () => openAt(i + 1) },
    });
  };
  const onSelectClick = (row, e, want) => {
    const i = indexOf(row);
    if (e.shiftKey && view.anchor !== null) {
      const [a, b] = [Math.min(view.anchor, i), Math.max(view.anchor, i)];
      select(view.rows.slice(a, b + 1).map((r) => r.data_row_id), true);
    } else select([row.data_row_id], want);
    view.anchor = i;
  };

  async function loadMore() {
    if (view.loading || view.done) return;
    view.loading = true;
    status.textContent = "Loading…";
    view.controller = new AbortController();
    try {
      const page = await api.gallery(
        runId,
        { filter: filter(), sort, limit: PAGE, cursor: view.cursor, iouThreshold: iou, confidenceThreshold: conf },
        view.controller.signal,
      );
      const rows = page.rows || [];
      if (page.total !== undefined && page.total !== null) view.total = page.total;
      for (const r of rows) {
        view.rows.push(r);
        grid.append(tile(r, { onOpen: (row) => openAt(indexOf(row)), onSelectClick }));
      }
      view.cursor = page.next_cursor || null;
      view.done = !view.cursor || rows.length === 0;
      status.textContent = view.done ? (view.rows.length ? "" : "No rows match these filters.") : "";
      updateCount();
    } catch (err) {
      if (err.name === "AbortError") return;
      status.replaceChildren(el("div", { class: "error-banner" }, `Gallery failed: ${err.message}`));
      view.done = true;
    } finally {
      view.loading = false;
    }
    // Keep filling while the sentinel is still visible (large screens, short pages).
    if (!view.done && sentinel.getBoundingClientRect().top < scroller.getBoundingClientRect().bottom + 400) loadMore();
  }

  const io = new IntersectionObserver((entries) => entries.some((e) => e.isIntersecting) && loadMore(), {
    root: scroller,
    rootMargin: "600px",
  });
  io.observe(sentinel);
  const off = on("selection", () => refreshSelected(grid));
  loadMore();
  return () => {
    io.disconnect();
    off();
    if (view.controller) view.controller.abort();
    closeDetail();
  };
}
