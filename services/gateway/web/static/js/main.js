// Entry point: login, header (run picker + views), hash router.

import { api, clearKey, getKey, setKey } from "./api.js";
import { renderSimilar, selectionBar } from "./actions.js";
import { el } from "./boxes.js";
import { renderGallery } from "./gallery.js";
import { renderMetrics } from "./metrics.js";
import { renderProjector } from "./projector.js";
import { emit, navigate, on, parseHash, state } from "./state.js";

const app = document.getElementById("app");
let cleanup = () => {};

function loginScreen(error) {
  cleanup();
  cleanup = () => {};
  const key = el("input", { type: "password", name: "api-key", placeholder: "bsk_…", autocomplete: "off", "aria-label": "API key" });
  const out = el("div", { class: "login-error", role: "alert" }, error || "");
  const submit = async (e) => {
    e.preventDefault();
    const k = key.value.trim();
    if (!k) return;
    try {
      const runs = await api.login(k);
      setKey(k);
      state.runs = runs;
      const target = location.hash && !location.hash.startsWith("#/login") ? location.hash : "";
      if (target) route();
      else if (runs.length) navigate(`runs/${runs[0].id}/gallery`, { sort: "mean_iou:asc:" });
      else route();
    } catch (err) {
      out.textContent = err.status === 401 || err.status === 403 ? "That key was not accepted." : `Cannot reach the gateway: ${err.message}`;
    }
  };
  app.replaceChildren(
    el(
      "div",
      { class: "login" },
      el(
        "form",
        { class: "login-card", onsubmit: submit },
        el("div", { class: "brand big" }, el("span", { class: "logo" }), "Blindspot"),
        el("p", { class: "hint" }, "Model error analysis. Paste an API key of your workspace; it is kept for this tab only."),
        key,
        el("button", { class: "btn primary", type: "submit" }, "Sign in"),
        out,
      ),
    ),
  );
  key.focus();
}

function header(runId, viewName) {
  const runSel = el(
    "select",
    { name: "run", "aria-label": "model run" },
    ...state.runs.map((r) => el("option", { value: String(r.id), selected: String(r.id) === String(runId) }, `${r.name}${r.version ? ` v${r.version}` : ""}`)),
  );
  runSel.addEventListener("change", () => navigate(`runs/${runSel.value}/${viewName}`));
  const tab = (name, label, params) =>
    el("a", { class: `tab${viewName === name ? " active" : ""}`, href: `#/runs/${runId}/${name}${params || ""}`, "data-view": name }, label);
  return el(
    "header",
    { class: "topbar" },
    el("div", { class: "brand" }, el("span", { class: "logo" }), "Blindspot"),
    runSel,
    el(
      "nav",
      { class: "tabs" },
      tab("gallery", "Gallery", "?sort=mean_iou:asc:"),
      tab("metrics", "Metrics"),
      tab("projector", "Projector"),
      tab("similar", "Similar"),
    ),
    el("span", { class: "grow" }),
    state.run ? el("span", { class: "run-meta" }, `IoU ${state.run.iou_threshold ?? 0.5} · conf ${state.run.confidence_threshold ?? 0.5}`) : null,
    el("button", { class: "btn ghost", onclick: () => { clearKey(); loginScreen(); } }, "Sign out"),
  );
}

async function loadRun(runId) {
  if (state.run && String(state.run.id) === String(runId)) return;
  const run = await api.run(runId);
  state.run = run;
  let classes = run.classes || [];
  if (!classes.length) {
    try {
      const rows = await api.classMetrics(runId);
      classes = rows.map((r) => r.class_name ?? r.name).filter((c) => c && c !== "all");
    } catch {
      classes = [];
    }
  }
  state.classes = [...new Set(classes.map((c) => (typeof c === "string" ? c : c.name)))].sort();
}

const VIEWS = { gallery: renderGallery, metrics: renderMetrics, projector: renderProjector, similar: renderSimilar };

async function route() {
  if (!getKey()) return loginScreen();
  const { parts, params } = parseHash();
  try {
    if (!state.runs.length) state.runs = await api.runs();
  } catch (err) {
    if (err.status === 401) return loginScreen("Your key was not accepted; sign in again.");
    app.replaceChildren(el("div", { class: "error-banner pad" }, `Cannot reach the gateway: ${err.message}`));
    return;
  }
  if (parts[0] !== "runs" || !parts[1]) {
    if (state.runs.length) return navigate(`runs/${state.runs[0].id}/gallery`, { sort: "mean_iou:asc:" });
    app.replaceChildren(el("div", { class: "empty pad" }, "No model runs in this workspace yet. Import one with `blindspot import`."));
    return;
  }
  const runId = parts[1];
  const viewName = VIEWS[parts[2]] ? parts[2] : "gallery";
  try {
    await loadRun(runId);
  } catch (err) {
    app.replaceChildren(header(runId, viewName), el("div", { class: "error-banner pad" }, `Run ${runId}: ${err.message}`));
    return;
  }
  cleanup();
  const content = el("main", { class: `content view-${viewName}` });
  app.replaceChildren(header(runId, viewName), content, bar);
  document.title = `Blindspot · ${viewName}`;
  cleanup = VIEWS[viewName](content, Number(runId), params) || (() => {});
  emit("selection", state.selection);
}

const bar = selectionBar();
window.addEventListener("hashchange", route);
window.addEventListener("blindspot:unauthorized", () => {
  clearKey();
  loginScreen("Your key was not accepted; sign in again.");
});
on("route", route);
route();
