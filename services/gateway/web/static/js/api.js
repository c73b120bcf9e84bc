// Every call the UI makes to the gateway lives here, so an API change is a change to this file only.
// The API key is asked once (login screen) and kept in sessionStorage for the tab's lifetime.

const KEY_STORAGE = "blindspot.apiKey";

export class ApiError extends Error {
  constructor(status, body) {
    const detail = body && (body.detail || body.error) ? body.detail || body.error : `HTTP ${status}`;
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
    this.body = body;
  }
}

export function getKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

export function setKey(key) {
  sessionStorage.setItem(KEY_STORAGE, key);
}

export function clearKey() {
  sessionStorage.removeItem(KEY_STORAGE);
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

async function request(method, path, { body, params, signal, key } = {}) {
  const headers = { Accept: "application/json" };
  const token = key || getKey();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(`/v1${path}${query(params)}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { detail: text };
    }
  }
  if (!res.ok) {
    if (res.status === 401) window.dispatchEvent(new CustomEvent("blindspot:unauthorized"));
    throw new ApiError(res.status, data);
  }
  return data;
}

// Lists come back either as a bare array or wrapped ({items|runs|...: [...]}); accept both.
function asList(data, ...names) {
  if (Array.isArray(data)) return data;
  for (const n of [...names, "items", "data", "results"]) {
    if (data && Array.isArray(data[n])) return data[n];
  }
  return [];
}

export const api = {
  /** Checks a key by listing runs with it; resolves to the runs. */
  async login(key) {
    return asList(await request("GET", "/runs", { key }), "runs");
  },
  async runs() {
    return asList(await request("GET", "/runs"), "runs");
  },
  run(runId) {
    return request("GET", `/runs/${runId}`);
  },
  /** One keyset page of the gallery: {rows, next_cursor}. */
  gallery(runId, { filter, sort, limit, cursor, iouThreshold, confidenceThreshold }, signal) {
    const body = { filter: filter || { all: [] }, limit: limit || 60 };
    if (sort && sort.field) body.sort = sort;
    if (cursor) body.cursor = cursor;
    else body.include_total = true; // the first page also counts every matching row
    if (iouThreshold !== undefined && iouThreshold !== null) body.iou_threshold = iouThreshold;
    if (confidenceThreshold !== undefined && confidenceThreshold !== null)
      body.confidence_threshold = confidenceThreshold;
    return request("POST", `/runs/${runId}/gallery`, { body, signal });
  },
  async classMetrics(runId, split) {
    return asList(await request("GET", `/runs/${runId}/metrics/classes`, { params: { split } }), "classes");
  },
  histogram(runId, { metric, className, split, bins }) {
    return request("GET", `/runs/${runId}/metrics/histogram`, {
      params: { metric, class_name: className, split, bins },
    });
  },
  confusion(runId, split) {
    return request("GET", `/runs/${runId}/metrics/confusion`, { params: { split } });
  },
  curves(runId, { className, split }) {
    return request("GET", `/runs/${runId}/metrics/curves`, { params: { class_name: className, split } });
  },
  async autoSlices(runId) {
    return asList(await request("GET", `/runs/${runId}/auto-slices`), "slices", "auto_slices");
  },
  row(rowId, runId) {
    return request("GET", `/rows/${rowId}`, { params: { model_run_id: runId } });
  },
  /** Rows similar to the given ones: {rows: [{data_row_id, score}]}. */
  similar({ dataRowIds, unlabeledOnly, limit }) {
    const body = { data_row_ids: dataRowIds, limit: limit || 50 };
    if (unlabeledOnly) body.filter = { annotation: "none" };
    return request("POST", "/similar", { body });
  },
  async slices() {
    return asList(await request("GET", "/slices"), "slices");
  },
  /** A slice: a row filter ({annotation, splits, class_names, error_types, model_run_id, ...}) and/or a
   * similarity anchor ({data_row_ids, score_threshold}); rows uploaded later that match join it. */
  createSlice({ name, modelRunId, filter, similarity }) {
    const body = { name, filter: filter || {} };
    if (modelRunId) body.model_run_id = modelRunId;
    if (similarity) body.similarity = similarity;
    return request("POST", "/slices", { body });
  },
  sliceRows(sliceId, cursor) {
    return request("GET", `/slices/${sliceId}/rows`, { params: { cursor } });
  },
  async projections(runId) {
    return asList(await request("GET", "/projections", { params: { model_run_id: runId } }), "projections");
  },
  projection(projectionId) {
    return request("GET", `/projections/${projectionId}`);
  },
  createProjection({ modelRunId, method }) {
    return request("POST", "/projections", { body: { model_run_id: modelRunId, method: method || "umap" } });
  },
  /** One page of map points; ``colorBy`` asks for a per-point value (metric, "class" or "split"). */
  projectionPoints(projectionId, cursor, limit, colorBy) {
    return request("GET", `/projections/${projectionId}/points`, {
      params: { cursor, limit: limit || 20000, color_by: colorBy },
    });
  },
  async projects() {
    return asList(await request("GET", "/projects"), "projects");
  },
  createProject(name) {
    return request("POST", "/projects", { body: { name } });
  },
  /** Queues rows for labeling: {batch, added, skipped}. Safe to retry with the same idempotency key. */
  createBatch(projectId, { name, priority, idempotencyKey, dataRowIds, modelRunId }) {
    const body = {
      name,
      priority,
      idempotency_key: idempotencyKey,
      selection: { data_row_ids: dataRowIds },
    };
    if (modelRunId) body.model_run_id = modelRunId;
    return request("POST", `/projects/${projectId}/batches`, { body });
  },
};
