// Selection -> action: the selection bar (any view), similar rows, save a slice, create a labeling batch.

import { api } from "./api.js";
import { el, fmt } from "./boxes.js";
import { clearSelection, navigate, on, setSelection, state } from "./state.js";
import { openDetail, refreshSelected, tile } from "./tiles.js";

function dialog(title, body, actions) {
  const close = () => node.remove();
  const node = el(
    "div",
    { class: "modal", role: "dialog", "aria-modal": "true", "aria-label": title },
    el("div", { class: "modal-card small" }, el("header", {}, el("h2", {}, title), el("button", { class: "btn ghost close", onclick: () => close() }, "✕")), body, el("footer", {}, ...actions(close))),
  );
  node.addEventListener("keydown", (e) => e.key === "Escape" && close());
  document.body.append(node);
  const first = node.querySelector("input, select");
  if (first) first.focus();
  return { node, close };
}

function message(box, text, kind = "ok") {
  box.replaceChildren(el("div", { class: kind === "ok" ? "ok-banner" : "error-banner", role: "status" }, text));
}

/** The bar at the bottom of every run view: selection size and what to do with it. */
export function selectionBar() {
  const count = el("strong", { "data-testid": "selection-count" }, "0");
  const unlabeled = el("input", { type: "checkbox", name: "unlabeled-only", checked: true });
  const bar = el(
    "div",
    { class: "selbar", hidden: true, "data-testid": "selection-bar" },
    el("span", {}, count, " selected"),
    el("button", { class: "btn ghost", onclick: () => clearSelection() }, "Clear"),
    el("span", { class: "sep" }),
    el("label", { class: "check" }, unlabeled, "unlabeled only"),
    el("button", { class: "btn", "data-testid": "find-similar", onclick: () => findSimilar(unlabeled.checked) }, "Find similar"),
    el("button", { class: "btn", "data-testid": "save-slice", onclick: () => saveSliceDialog() }, "Save slice"),
    el("button", { class: "btn primary", "data-testid": "create-batch", onclick: () => batchDialog() }, "Create batch…"),
  );
  on("selection", (sel) => {
    count.textContent = String(sel.size);
    bar.hidden = sel.size === 0;
  });
  return bar;
}

// --- similar rows ---------------------------------------------------------------------------

export function findSimilar(unlabeledOnly) {
  const run = state.run;
  state.similar = {
    anchors: [...state.selection],
    unlabeledOnly,
    runId: run ? run.id : null,
  };
  navigate(`runs/${run ? run.id : 0}/similar`, { unlabeled: unlabeledOnly ? "1" : "0" });
}

/** Results of a similarity search: rows ranked by score, each as a tile, selectable for a batch. */
export function renderSimilar(root, runId) {
  const s = state.similar;
  if (!s || !s.anchors.length) {
    root.replaceChildren(el("div", { class: "empty pad" }, "Select rows in the gallery or projector, then “Find similar”."));
    return () => {};
  }
  const status = el("div", { class: "grid-status" }, "Searching…");
  const grid = el("div", { class: "grid", "data-testid": "similar-grid" });
  const count = el("span", { class: "count", "data-testid": "similar-count" }, "…");
  const anchors = s.anchors.slice();
  root.replaceChildren(
    el(
      "div",
      { class: "similar" },
      el(
        "div",
        { class: "toolbar" },
        el("strong", {}, `Similar to ${anchors.length} row${anchors.length === 1 ? "" : "s"}`),
        el("span", { class: "tb-label" }, s.unlabeledOnly ? "unlabeled only" : "labeled and unlabeled"),
        el("span", { class: "grow" }),
        el("button", { class: "btn ghost", "data-testid": "select-all-similar", onclick: () => setSelection(results.map((r) => r.data_row_id)) }, "Select all results"),
        el("button", { class: "btn ghost", onclick: () => saveSliceDialog({ similarity: { data_row_ids: anchors, score_threshold: minScore() }, unlabeledOnly: s.unlabeledOnly }) }, "Save as slice"),
        count,
      ),
      el("div", { class: "grid-scroll" }, grid, status),
    ),
  );
  let results = [];
  const minScore = () => (results.length ? Math.min(...results.map((r) => r.score ?? 0)) : 0);
  let cancelled = false;
  api
    .similar({ dataRowIds: anchors, unlabeledOnly: s.unlabeledOnly, limit: 48 })
    .then(async (res) => {
      results = (res.rows || res.results || []).filter((r) => !anchors.includes(Number(r.data_row_id)));
      count.textContent = `${results.length} rows`;
      count.dataset.count = String(results.length);
      status.textContent = results.length ? "" : "No similar rows found.";
      // Fetch tiles with a few requests in flight.
      let next = 0;
      const worker = async () => {
        while (next < results.length && !cancelled) {
          const r = results[next++];
          let row;
          try {
            row = await api.row(r.data_row_id, runId);
          } catch {
            try {
              row = await api.row(r.data_row_id);
            } catch {
              row = { data_row_id: r.data_row_id, width: 1, height: 1, objects: [], metrics: {} };
            }
          }
          if (cancelled) return;
          const full = { ...row, data_row_id: r.data_row_id };
          const t = tile(full, { extra: `sim ${fmt(r.score, 3)}`, onOpen: (x) => openDetail(x, { runId }) });
          t.style.order = String(results.indexOf(r));
          grid.append(t);
        }
      };
      await Promise.all([worker(), worker(), worker(), worker(), worker(), worker()]);
    })
    .catch((e) => {
      status.replaceChildren(el("div", { class: "error-banner" }, `Similarity search failed: ${e.message}`));
      count.textContent = "0 rows";
    });
  const off = on("selection", () => refreshSelected(grid));
  return () => {
    cancelled = true;
    off();
  };
}

// --- slices ---------------------------------------------------------------------------------

/** The part of gallery conditions a slice's row filter can hold (metric ranges cannot). */
export function sliceRowFilter(conditions, runId) {
  const f = {};
  const list = (v) => (Array.isArray(v) ? v : [v]);
  for (const c of conditions || []) {
    if (c.field === "annotation" && c.op === "eq") f.annotation = c.value;
    else if (c.field === "split" && (c.op === "eq" || c.op === "in")) f.splits = list(c.value);
    else if ((c.field === "class_in_gt" || c.field === "class_in_pred") && (c.op === "eq" || c.op === "in"))
      f.class_names = [...new Set([...(f.class_names || []), ...list(c.value)])];
    else if (c.field === "error_type" && (c.op === "eq" || c.op === "in")) f.error_types = list(c.value);
  }
  if ((f.splits || f.error_types) && runId) f.model_run_id = runId;
  return f;
}

export function saveSliceDialog({ similarity, unlabeledOnly } = {}) {
  const name = el("input", { name: "slice-name", placeholder: "e.g. night-time missed pedestrians", required: true });
  const threshold = el("input", { type: "number", name: "score-threshold", min: "-1", max: "1", step: "0.01" });
  const out = el("div", {});
  const runId = state.run?.id;
  const filter = similarity
    ? unlabeledOnly
      ? { annotation: "none" }
      : {}
    : sliceRowFilter(state.gallery && state.gallery.runId === runId ? state.gallery.conditions : [], runId);
  const anchors = similarity ? similarity.data_row_ids : [...state.selection];
  threshold.value = String(similarity ? Number(similarity.score_threshold.toFixed(3)) : 0.8);
  const parts = Object.entries(filter).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(", ") : v}`);
  dialog(
    "Save slice",
    el(
      "div",
      { class: "form" },
      el("label", { class: "field" }, el("span", {}, "name"), name),
      anchors.length ? el("label", { class: "field" }, el("span", {}, "similarity ≥"), threshold) : null,
      el(
        "p",
        { class: "hint" },
        `Rows ${anchors.length ? `similar to ${anchors.length} row(s)` : "of the filter"}${parts.length ? ` where ${parts.join("; ")}` : ""}. Rows uploaded later that match join the slice.`,
      ),
      out,
    ),
    (close) => [
      el("button", { class: "btn ghost", onclick: close }, "Cancel"),
      el("button", {
        class: "btn primary",
        "data-testid": "slice-submit",
        onclick: async () => {
          if (!name.value.trim()) return message(out, "A name is required.", "err");
          if (!anchors.length && !Object.keys(filter).length)
            return message(out, "Select rows or filter by split, class, annotation or error type first.", "err");
          try {
            const sl = await api.createSlice({
              name: name.value.trim(),
              modelRunId: runId,
              filter,
              similarity: anchors.length ? { data_row_ids: anchors.slice(0, 1000), score_threshold: Number(threshold.value) } : null,
            });
            message(out, `Saved slice “${sl.name || name.value}” (#${sl.id}${sl.members !== undefined ? `, ${sl.members} rows` : ""}).`);
            out.dataset.sliceId = String(sl.id);
          } catch (e) {
            message(out, e.message, "err");
          }
        },
      }, "Save"),
    ],
  );
}

// --- batches --------------------------------------------------------------------------------

export async function batchDialog() {
  const ids = [...state.selection];
  const projectSel = el("select", { name: "project" }, el("option", { value: "" }, "Loading projects…"));
  const newProject = el("input", { name: "new-project", placeholder: "or a new project name" });
  const batchName = el("input", { name: "batch-name", value: `blindspot-${new Date().toISOString().slice(0, 16).replace("T", "-")}` });
  const priority = el("select", { name: "priority" }, ...[1, 2, 3, 4, 5].map((p) => el("option", { value: String(p), selected: p === 3 }, `${p}${p === 1 ? " (highest)" : p === 5 ? " (lowest)" : ""}`)));
  const out = el("div", { "data-testid": "batch-result" });
  // One key per dialog: pressing Create twice (or retrying after a timeout) cannot queue twice.
  const idempotencyKey = crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`;
  dialog(
    `Create batch (${ids.length} rows)`,
    el(
      "div",
      { class: "form" },
      el("label", { class: "field" }, el("span", {}, "project"), projectSel),
      el("label", { class: "field" }, el("span", {}, ""), newProject),
      el("label", { class: "field" }, el("span", {}, "batch name"), batchName),
      el("label", { class: "field" }, el("span", {}, "priority"), priority),
      out,
    ),
    (close) => [
      el("button", { class: "btn ghost", onclick: close }, "Cancel"),
      el("button", {
        class: "btn primary",
        "data-testid": "batch-submit",
        onclick: async () => {
          try {
            let projectId = projectSel.value;
            if (newProject.value.trim()) {
              const p = await api.createProject(newProject.value.trim());
              projectId = p.id;
              // A retry now reuses the project instead of creating it twice.
              projectSel.append(el("option", { value: String(p.id) }, p.name));
              projectSel.value = String(p.id);
              newProject.value = "";
            }
            if (!projectId) return message(out, "Choose or name a project.", "err");
            const res = await api.createBatch(projectId, {
              name: batchName.value.trim() || "batch",
              priority: Number(priority.value),
              idempotencyKey,
              dataRowIds: ids,
              modelRunId: state.run?.id,
            });
            const b = res.batch || {};
            const n = (x) => (Array.isArray(x) ? x.length : Number(x || 0));
            message(out, `Batch “${b.name || batchName.value}” #${b.id ?? "?"} (priority ${b.priority ?? priority.value}): ${n(res.added)} added, ${n(res.skipped)} already in the project.`);
            out.dataset.batchId = String(b.id ?? "");
            out.dataset.added = String(n(res.added));
            out.dataset.skipped = String(n(res.skipped));
          } catch (e) {
            message(out, e.message, "err");
          }
        },
      }, "Create batch"),
    ],
  );
  try {
    const projects = await api.projects();
    projectSel.replaceChildren(el("option", { value: "" }, projects.length ? "choose a project" : "no projects yet"), ...projects.map((p) => el("option", { value: String(p.id) }, p.name)));
    if (projects.length === 1) projectSel.value = String(projects[0].id);
  } catch (e) {
    projectSel.replaceChildren(el("option", { value: "" }, `projects unavailable: ${e.message}`));
  }
}
