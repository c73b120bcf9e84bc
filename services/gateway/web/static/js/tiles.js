// A gallery tile (thumbnail + boxes + key metrics + select box) and the full-resolution detail view.

import { api } from "./api.js";
import { ERROR_LABELS, boxedImage, el, fmt, legend, showTooltip } from "./boxes.js";
import { select, state } from "./state.js";

/** A grid tile for one gallery row. ``onOpen(row)`` opens its detail; ``extra`` adds a badge. */
export function tile(row, { onOpen, onSelectClick, showTpGt, statuses, extra } = {}) {
  const id = Number(row.data_row_id);
  const m = row.metrics || {};
  const selected = state.selection.has(id);
  const check = el("input", {
    type: "checkbox",
    class: "tile-check",
    "aria-label": `select row ${id}`,
    checked: selected,
  });
  check.addEventListener("click", (e) => {
    e.stopPropagation();
    if (onSelectClick) onSelectClick(row, e, check.checked);
    else select([id], check.checked);
  });
  const img = boxedImage(row, row.thumbnail_url || row.image_url, { showTpGt, statuses, onHover: showTooltip });
  const node = el(
    "figure",
    { class: `tile${selected ? " selected" : ""}`, dataset: { rowId: String(id) }, tabindex: "0" },
    img,
    check,
    extra ? el("span", { class: "tile-badge" }, extra) : null,
    el(
      "figcaption",
      {},
      el("span", { class: "key", title: row.global_key || "" }, (row.global_key || `#${id}`).split("/").pop()),
      m.tp === undefined || m.tp === null
        ? el("span", { class: "nums muted" }, row.num_annotations === 0 ? "unlabeled" : "no metrics")
        : el(
            "span",
            { class: "nums" },
            el("span", { class: "n-tp", title: "true positives" }, fmt(m.tp)),
            el("span", { class: "n-fp", title: "false positives" }, fmt(m.fp)),
            el("span", { class: "n-fn", title: "false negatives" }, fmt(m.fn)),
            el("span", { class: "n-iou", title: "mean IoU of matches" }, `IoU ${fmt(m.mean_iou)}`),
          ),
    ),
  );
  node.addEventListener("click", (e) => {
    if (e.target === check) return;
    if (e.metaKey || e.ctrlKey || e.shiftKey) {
      e.preventDefault();
      if (onSelectClick) onSelectClick(row, e, !state.selection.has(id));
      else select([id], !state.selection.has(id));
      return;
    }
    if (onOpen) onOpen(row);
  });
  node.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && onOpen) onOpen(row);
    if (e.key === " ") {
      e.preventDefault();
      select([id], !state.selection.has(id));
    }
  });
  return node;
}

/** Syncs the tiles' selected look with the selection set. */
export function refreshSelected(container) {
  for (const t of container.querySelectorAll(".tile")) {
    const on = state.selection.has(Number(t.dataset.rowId));
    t.classList.toggle("selected", on);
    const c = t.querySelector(".tile-check");
    if (c) c.checked = on;
  }
}

const METRIC_ORDER = ["precision", "recall", "f1", "mean_iou", "tp", "fp", "fn", "mean_conf", "min_conf", "max_conf"];

/**
 * Opens the detail view of one row at full resolution with every object's match, IoU and error type.
 * ``nav`` = {prev(), next()} moves through the loaded rows.
 */
export async function openDetail(row, { runId, thresholds, nav } = {}) {
  closeDetail();
  const body = el("div", { class: "detail-body" }, el("div", { class: "loading" }, "Loading full resolution…"));
  const title = el("h2", {}, row.global_key || `Row ${row.data_row_id}`);
  const modal = el(
    "div",
    { class: "modal", role: "dialog", "aria-modal": "true", "aria-label": "Row detail", id: "detail" },
    el(
      "div",
      { class: "modal-card" },
      el(
        "header",
        {},
        title,
        legend(),
        el("button", { class: "btn ghost", title: "previous (←)", onclick: () => nav && nav.prev() }, "‹"),
        el("button", { class: "btn ghost", title: "next (→)", onclick: () => nav && nav.next() }, "›"),
        el("button", { class: "btn ghost close", title: "close (Esc)", onclick: closeDetail }, "✕"),
      ),
      body,
    ),
  );
  modal.addEventListener("click", (e) => {
    if (e.target === modal) closeDetail();
  });
  const onKey = (e) => {
    if (e.key === "Escape") closeDetail();
    if (e.key === "ArrowRight" && nav) nav.next();
    if (e.key === "ArrowLeft" && nav) nav.prev();
  };
  modal._onKey = onKey;
  document.addEventListener("keydown", onKey);
  document.body.append(modal);

  let full = row;
  try {
    const fetched = await api.row(row.data_row_id, runId);
    // The gallery row carries the objects at the chosen thresholds; keep them if the detail has none.
    full = { ...row, ...fetched, metrics: fetched.metrics || row.metrics };
    if (thresholds && row.objects && (thresholds.iou !== null || thresholds.conf !== null)) full.objects = row.objects;
    if (!full.objects) full.objects = row.objects || [];
  } catch (err) {
    body.prepend(el("div", { class: "error-banner" }, `Full resolution unavailable: ${err.message}`));
  }
  if (!document.body.contains(modal)) return;
  renderDetail(body, full);
}

function renderDetail(body, row) {
  let highlighted = null;
  const picture = boxedImage(row, row.image_url || row.thumbnail_url, { labels: true, showTpGt: true });
  picture.classList.add("detail-image");
  const objects = [...(row.objects || [])].sort(
    (a, b) => a.kind.localeCompare(b.kind) || (b.confidence ?? 1) - (a.confidence ?? 1),
  );
  const groups = picture.querySelectorAll("g.obj");
  const byIndex = new Map();
  // boxedImage sorts GT first then predictions; rebuild the same order to map rows to boxes.
  const drawn = [...(row.objects || [])].sort((a, b) => (a.kind === b.kind ? 0 : a.kind === "gt" ? -1 : 1));
  drawn.forEach((o, i) => byIndex.set(o, groups[i]));
  const tbody = el("tbody");
  for (const o of objects) {
    const tr = el(
      "tr",
      { class: `st-${o.status}` },
      el("td", {}, o.kind === "gt" ? "GT" : "Pred"),
      el("td", {}, String(o.id ?? "")),
      el("td", {}, o.class_name),
      el("td", {}, el("span", { class: `pill st-${o.status}` }, o.status)),
      el("td", { class: "num" }, fmt(o.confidence, 3)),
      el("td", { class: "num" }, fmt(o.iou, 3)),
      el("td", {}, o.error_type ? ERROR_LABELS[o.error_type] || o.error_type : "—"),
      el("td", { class: "num" }, o.matched_id ?? o.matched_object_id ?? "—"),
      el("td", { class: "num mono" }, o.box.map((v) => Math.round(v)).join(", ")),
    );
    tr.addEventListener("mouseenter", () => {
      if (highlighted) highlighted.classList.remove("hl");
      highlighted = byIndex.get(o);
      if (highlighted) highlighted.classList.add("hl");
    });
    tbody.append(tr);
  }
  const m = row.metrics || {};
  const metricList = el(
    "dl",
    { class: "metric-list" },
    ...METRIC_ORDER.filter((k) => k in m).flatMap((k) => [el("dt", {}, k), el("dd", {}, fmt(m[k], 3))]),
  );
  const meta = el(
    "dl",
    { class: "metric-list" },
    el("dt", {}, "row id"),
    el("dd", {}, String(row.data_row_id)),
    el("dt", {}, "split"),
    el("dd", {}, row.split || "—"),
    el("dt", {}, "size"),
    el("dd", {}, `${row.width} × ${row.height}`),
    ...Object.entries(row.metadata || {})
      .slice(0, 12)
      .flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, typeof v === "object" ? JSON.stringify(v) : String(v))]),
  );
  body.replaceChildren(
    el("div", { class: "detail-left" }, picture),
    el(
      "div",
      { class: "detail-right" },
      el("h3", {}, "Row"),
      meta,
      el("h3", {}, "Metrics"),
      metricList,
      el("h3", {}, `Objects (${objects.length})`),
      el(
        "table",
        { class: "table compact objects-table" },
        el(
          "thead",
          {},
          el("tr", {}, ...["kind", "id", "class", "status", "conf", "IoU", "error", "match", "box x,y,w,h"].map((h) => el("th", {}, h))),
        ),
        tbody,
      ),
    ),
  );
}

export function closeDetail() {
  const m = document.getElementById("detail");
  if (m) {
    document.removeEventListener("keydown", m._onKey);
    m.remove();
  }
  showTooltip(null);
}
