// Metrics view: per-class table per split, histograms per metric and class, confusion matrix, PR curves.
// A histogram bucket or a confusion cell opens the gallery with the filter the API gives for it.

import { api } from "./api.js";
import { el, fmt } from "./boxes.js";
import { PALETTE, histogram, lineChart } from "./charts.js";
import { conditionsOf, navigate, openGallery, state } from "./state.js";

const SPLITS = [
  ["all", "all splits"],
  ["each", "each split (table)"],
  ["train", "train"],
  ["validation", "validation"],
  ["test", "test"],
];
const HIST_METRICS = ["precision", "recall", "f1", "mean_iou", "confidence", "fp", "fn"];
const TABLE_COLS = [
  ["num_gt", "GT", 0],
  ["num_pred", "Pred", 0],
  ["tp", "TP", 0],
  ["fp", "FP", 0],
  ["fn", "FN", 0],
  ["precision", "Precision", 3],
  ["recall", "Recall", 3],
  ["f1", "F1", 3],
  ["ap50", "AP50", 3],
  ["ap", "AP", 3],
];

const className = (r) => r.class_name ?? r.name ?? r.class ?? "";
// Histograms and the confusion matrix take no split for "all"; the table and curves take "all".
const apiSplit = (split) => (split === "all" || split === "each" ? undefined : split);
const tableSplit = (split) => (split === "each" ? undefined : split);

/** Normalises the curves payload into {pr: [{name, xs, ys}], f1: [...]}. */
function curveSeries(data, fallbackName) {
  const items = Array.isArray(data) ? data : data.curves || data.classes || [data];
  const pr = [];
  const f1 = [];
  for (const item of items) {
    const name = className(item) || fallbackName || "all";
    const p = item.pr_curve || item.pr || (item.recall && item.precision ? item : null);
    if (p && p.recall && p.precision) pr.push({ name, xs: p.recall, ys: p.precision });
    const f = item.f1_curve || item.f1 || null;
    if (f && f.confidence && f.f1) f1.push({ name, xs: f.confidence, ys: f.f1 });
  }
  return { pr, f1 };
}

function section(title, ...children) {
  return el("section", { class: "panel" }, el("h3", {}, title), ...children);
}

export function renderMetrics(root, runId, params) {
  const split = params.get("split") || "all";
  const cls = params.get("class") || "";
  const go = (patch) => {
    const p = { split, class: cls, ...patch };
    if (!p.class) delete p.class;
    navigate(`runs/${runId}/metrics`, p);
  };
  const splitSel = el("select", { name: "split", "aria-label": "split" }, ...SPLITS.map(([v, t]) => el("option", { value: v, selected: v === split }, t)));
  splitSel.addEventListener("change", () => go({ split: splitSel.value }));
  const classSel = el(
    "select",
    { name: "class", "aria-label": "class" },
    el("option", { value: "" }, "all classes"),
    ...state.classes.map((c) => el("option", { value: c, selected: c === cls }, c)),
  );
  classSel.addEventListener("change", () => go({ class: classSel.value }));

  const tableBox = section("Per-class metrics", el("div", { class: "loading" }, "Loading…"));
  const histBox = section(`Row histograms${cls ? ` · ${cls}` : ""} (click a bar to open its rows)`, el("div", { class: "loading" }, "Loading…"));
  const confBox = section("Confusion matrix (click a cell to open its rows)", el("div", { class: "loading" }, "Loading…"));
  const curveBox = section("Precision–recall", el("div", { class: "loading" }, "Loading…"));
  root.replaceChildren(
    el(
      "div",
      { class: "metrics" },
      el("div", { class: "toolbar" }, el("span", { class: "tb-label" }, "Split"), splitSel, el("span", { class: "tb-label" }, "Class"), classSel),
      el("div", { class: "metrics-grid" }, tableBox, curveBox, histBox, confBox),
    ),
  );
  const fail = (box, err) => box.append(el("div", { class: "error-banner" }, err.message));
  const clearLoading = (box) => box.querySelectorAll(".loading").forEach((n) => n.remove());

  // Per-class table.
  api
    .classMetrics(runId, tableSplit(split))
    .then((rows) => {
      clearLoading(tableBox);
      let sortKey = "ap50";
      let desc = false;
      const table = el("table", { class: "table class-table", "data-testid": "class-table" });
      const draw = () => {
        const sorted = [...rows].sort((a, b) => {
          const x = a[sortKey] ?? -1;
          const y = b[sortKey] ?? -1;
          return (desc ? y - x : x - y) || String(a.split).localeCompare(String(b.split));
        });
        const head = el(
          "tr",
          {},
          el("th", {}, "class"),
          el("th", {}, "split"),
          ...TABLE_COLS.map(([k, t]) =>
            el("th", { class: `num sortable${k === sortKey ? " sorted" : ""}`, onclick: () => { desc = k === sortKey ? !desc : false; sortKey = k; draw(); } }, t + (k === sortKey ? (desc ? " ▼" : " ▲") : "")),
          ),
        );
        const body = sorted.map((r) => {
          const name = className(r);
          const real = name && name !== "all" && r.class_id !== 0;
          return el(
            "tr",
            {},
            el(
              "td",
              {},
              real
                ? el("a", { href: "#", onclick: (e) => { e.preventDefault(); openGallery(runId, { conditions: [{ field: "class_in_gt", op: "in", value: [name] }], sort: { field: "recall", order: "asc", class_name: name }, label: `class ${name}` }); } }, name)
                : el("strong", {}, "all classes"),
            ),
            el("td", { class: "muted" }, r.split ?? split),
            ...TABLE_COLS.map(([k, , d]) => {
              const v = r[k];
              const cell = el("td", { class: "num" }, fmt(v, d));
              if (d && typeof v === "number") cell.style.setProperty("--v", String(v));
              if (d) cell.classList.add("heat");
              return cell;
            }),
          );
        });
        table.replaceChildren(el("thead", {}, head), el("tbody", {}, ...body));
      };
      draw();
      tableBox.append(rows.length ? table : el("div", { class: "empty" }, "No per-class metrics for this split yet."));
    })
    .catch((e) => fail(tableBox, e));

  // Histograms, one per metric for the chosen class.
  const hgrid = el("div", { class: "hist-grid" });
  clearLoading(histBox);
  histBox.append(hgrid);
  for (const metric of HIST_METRICS) {
    const cell = el("div", { class: "hist", "data-metric": metric }, el("div", { class: "loading" }, metric));
    hgrid.append(cell);
    api
      .histogram(runId, { metric, className: cls || undefined, split: apiSplit(split), bins: 10 })
      .then((h) => {
        const buckets = h.buckets || [];
        const ranged = buckets.filter((b) => b.lo !== null);
        const lastHi = ranged.length ? ranged[ranged.length - 1].hi : null;
        const onBucket = (b) =>
          openGallery(runId, {
            conditions: conditionsOf(b.filter),
            sort: { field: metric, order: "asc", ...(cls ? { class_name: cls } : {}) },
            label:
              b.lo === null
                ? `${metric}${cls ? ` [${cls}]` : ""} has no value · ${b.count} rows`
                : `${metric}${cls ? ` [${cls}]` : ""} ∈ [${fmt(b.lo)}, ${fmt(b.hi)}${b.hi === lastHi ? "]" : ")"} · ${b.count} rows`,
          });
        cell.replaceChildren(histogram(buckets, { title: metric, onBucket }));
      })
      .catch((e) => cell.replaceChildren(el("div", { class: "error-banner" }, `${metric}: ${e.message}`)));
  }

  // Confusion matrix.
  api
    .confusion(runId, apiSplit(split))
    .then((c) => {
      clearLoading(confBox);
      const classes = c.classes || [];
      const cells = c.cells || [];
      const key = (g, p) => `${g ?? ""}\u0000${p ?? ""}`;
      const byKey = new Map(cells.map((x) => [key(x.gt_class, x.pred_class), x]));
      const max = Math.max(1, ...cells.map((x) => x.count));
      const axis = [...classes, null];
      const label = (v) => (v === null ? "∅" : v);
      const table = el(
        "table",
        { class: "confusion", "data-testid": "confusion" },
        el("thead", {}, el("tr", {}, el("th", { class: "corner" }, "GT ↓ / Pred →"), ...axis.map((p) => el("th", { class: "rot" }, el("span", {}, p === null ? "missed (∅)" : p))))),
        el(
          "tbody",
          {},
          ...axis.map((gt) =>
            el(
              "tr",
              {},
              el("th", {}, gt === null ? "background (∅)" : gt),
              ...axis.map((pred) => {
                const x = byKey.get(key(gt, pred));
                const n = x ? x.count : 0;
                const nRows = x ? x.rows ?? x.count : 0;
                const td = el("td", { class: `cm${gt === pred ? " diag" : ""}`, title: `GT ${label(gt)} → Pred ${label(pred)}: ${n} boxes in ${nRows} rows`, "data-count": n, "data-rows": nRows }, n ? String(n) : "");
                td.style.setProperty("--a", String(n ? 0.15 + 0.85 * Math.sqrt(n / max) : 0));
                if (x && n && x.filter) {
                  td.classList.add("clickable");
                  td.addEventListener("click", () =>
                    openGallery(runId, { conditions: conditionsOf(x.filter), label: `confusion GT ${label(gt)} → Pred ${label(pred)} · ${nRows} rows` }),
                  );
                }
                return td;
              }),
            ),
          ),
        ),
      );
      confBox.append(classes.length ? el("div", { class: "cm-wrap" }, table) : el("div", { class: "empty" }, "No confusion matrix yet."));
    })
    .catch((e) => fail(confBox, e));

  // PR curves: the chosen class, or every class overlaid.
  api
    .curves(runId, { className: cls || undefined, split: split === "each" ? "all" : split })
    .then((d) => {
      clearLoading(curveBox);
      const items = Array.isArray(d) ? d : d.curves || [d];
      // Without a class: one curve per class (the run summary, class_name null, only if alone).
      const perClass = items.filter((c) => className(c));
      const chosen = (perClass.length ? perClass : items).slice(0, 16);
      const { pr, f1 } = curveSeries(chosen, cls || "all classes");
      if (!pr.length) {
        curveBox.append(el("div", { class: "empty" }, "No curves for this selection."));
        return;
      }
      pr.forEach((s, i) => (s.color = PALETTE[i % PALETTE.length]));
      f1.forEach((s, i) => (s.color = PALETTE[i % PALETTE.length]));
      curveBox.append(
        el(
          "div",
          { class: "curves" },
          lineChart(pr, { xLabel: "recall", yLabel: "precision" }),
          f1.length ? lineChart(f1, { xLabel: "confidence", yLabel: "F1" }) : null,
        ),
        el("div", { class: "series-legend" }, ...pr.map((s) => el("span", {}, el("i", { style: `background:${s.color}` }), s.name))),
      );
    })
    .catch((e) => fail(curveBox, e));
  return () => {};
}
