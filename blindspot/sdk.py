"""A small Python SDK over the gateway's HTTP API (httpx). The CLI uses it; so can notebooks.

    from blindspot.sdk import Client
    bs = Client("http://127.0.0.1:8000", api_key="bsk_...")
    page = bs.gallery(run_id, filter={"all": [{"field": "iou", "op": "lt", "value": 0.5}]},
                      sort={"field": "iou", "order": "asc"})
    for row in bs.iter_gallery(run_id, filter=...):   # follows next_cursor
        ...
    hist = bs.histogram(run_id, "recall", class_name="person")
    rows = bs.gallery(run_id, filter=hist["buckets"][2]["filter"])  # drill down into a bucket

Errors come back as :class:`ApiError` with the API's ``error``/``detail``/``context``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: str, context: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
        self.context = context or {}


class Client:
    """One workspace's view of Blindspot (the API key decides which workspace)."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url or os.environ.get("BLINDSPOT_URL", DEFAULT_URL)
        key = api_key or os.environ.get("BLINDSPOT_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ transport
    def request(self, method: str, path: str, **kw: Any) -> Any:
        r = self._http.request(method, path, **kw)
        if r.status_code >= 400:
            try:
                body = r.json()
            except ValueError:
                body = {"error": "http_error", "detail": r.text}
            raise ApiError(
                r.status_code, body.get("error", "error"), body.get("detail", ""), body.get("context")
            )
        if r.status_code == 204 or not r.content:
            return None
        return r.json()

    # --------------------------------------------------------------------------------------------- auth
    def create_workspace(self, name: str, bootstrap_token: str) -> dict[str, Any]:
        return self.request(
            "POST", "/v1/workspaces", json={"name": name}, headers={"X-Bootstrap-Token": bootstrap_token}
        )  # type: ignore[no-any-return]

    def me(self) -> dict[str, Any]:
        return self.request("GET", "/v1/me")  # type: ignore[no-any-return]

    def create_api_key(self, name: str, scopes: list[str]) -> dict[str, Any]:
        return self.request("POST", "/v1/api-keys", json={"name": name, "scopes": scopes})  # type: ignore[no-any-return]

    def api_keys(self) -> list[dict[str, Any]]:
        return self.request("GET", "/v1/api-keys")["keys"]  # type: ignore[no-any-return]

    def revoke_api_key(self, key_id: int) -> dict[str, Any]:
        return self.request("DELETE", f"/v1/api-keys/{key_id}")  # type: ignore[no-any-return]

    # --------------------------------------------------------------------------------------------- runs
    def runs(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self.request(
                "GET", "/v1/runs", params={"limit": 200, **({"cursor": cursor} if cursor else {})}
            )
            out += page["runs"]
            cursor = page["next_cursor"]
            if not cursor:
                return out

    def run(self, run_id: int) -> dict[str, Any]:
        return self.request("GET", f"/v1/runs/{run_id}")  # type: ignore[no-any-return]

    def row(self, row_id: int, model_run_id: int | None = None) -> dict[str, Any]:
        params = {"model_run_id": model_run_id} if model_run_id else {}
        return self.request("GET", f"/v1/rows/{row_id}", params=params)  # type: ignore[no-any-return]

    # ------------------------------------------------------------------------------------------ gallery
    def gallery(
        self,
        run_id: int,
        *,
        filter: dict[str, Any] | None = None,
        sort: dict[str, Any] | None = None,
        limit: int = 50,
        cursor: str | None = None,
        iou_threshold: float | None = None,
        confidence_threshold: float | None = None,
        include_total: bool = False,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"limit": limit, "include_total": include_total}
        for k, v in (
            ("filter", filter),
            ("sort", sort),
            ("cursor", cursor),
            ("iou_threshold", iou_threshold),
            ("confidence_threshold", confidence_threshold),
        ):
            if v is not None:
                body[k] = v
        return self.request("POST", f"/v1/runs/{run_id}/gallery", json=body)  # type: ignore[no-any-return]

    def iter_gallery(self, run_id: int, *, page_size: int = 200, **kw: Any) -> Iterator[dict[str, Any]]:
        """Every matching row, page after page (keyset cursor)."""
        cursor = None
        while True:
            page = self.gallery(run_id, limit=page_size, cursor=cursor, **kw)
            yield from page["rows"]
            cursor = page["next_cursor"]
            if not cursor:
                return

    # ------------------------------------------------------------------------------------------ metrics
    def class_metrics(self, run_id: int, split: str | None = None) -> list[dict[str, Any]]:
        params = {"split": split} if split else {}
        return self.request("GET", f"/v1/runs/{run_id}/metrics/classes", params=params)["classes"]  # type: ignore[no-any-return]

    def histogram(
        self,
        run_id: int,
        metric: str,
        *,
        class_name: str | None = None,
        split: str | None = None,
        bins: int = 10,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"metric": metric, "bins": bins}
        if class_name:
            params["class_name"] = class_name
        if split:
            params["split"] = split
        return self.request("GET", f"/v1/runs/{run_id}/metrics/histogram", params=params)  # type: ignore[no-any-return]

    def confusion(self, run_id: int, split: str | None = None) -> dict[str, Any]:
        params = {"split": split} if split else {}
        return self.request("GET", f"/v1/runs/{run_id}/metrics/confusion", params=params)  # type: ignore[no-any-return]

    def curves(
        self, run_id: int, class_name: str | None = None, split: str | None = None
    ) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("class_name", class_name), ("split", split)) if v}
        return self.request("GET", f"/v1/runs/{run_id}/metrics/curves", params=params)["curves"]  # type: ignore[no-any-return]

    def tide(self, run_id: int, split: str | None = None) -> list[dict[str, Any]]:
        params = {"split": split} if split else {}
        return self.request("GET", f"/v1/runs/{run_id}/metrics/tide", params=params)["rows"]  # type: ignore[no-any-return]

    def auto_slices(self, run_id: int, split: str | None = None) -> list[dict[str, Any]]:
        params = {"split": split} if split else {}
        return self.request("GET", f"/v1/runs/{run_id}/auto-slices", params=params)["slices"]  # type: ignore[no-any-return]

    def compare(self, run_id: int, other_run_id: int) -> dict[str, Any]:
        return self.request("GET", f"/v1/runs/{run_id}/compare/{other_run_id}")  # type: ignore[no-any-return]

    # ---------------------------------------------------------------------------------------- catalog
    def catalog(
        self,
        *,
        selection: dict[str, Any] | None = None,
        annotation: str | None = None,
        dataset_ids: list[int] | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"limit": limit}
        for k, v in (
            ("selection", selection),
            ("annotation", annotation),
            ("dataset_ids", dataset_ids),
            ("cursor", cursor),
        ):
            if v is not None:
                body[k] = v
        return self.request("POST", "/v1/catalog/query", json=body)  # type: ignore[no-any-return]

    def similar(self, data_row_ids: list[int], *, limit: int = 50, **kw: Any) -> dict[str, Any]:
        return self.request("POST", "/v1/similar", json={"data_row_ids": data_row_ids, "limit": limit, **kw})  # type: ignore[no-any-return]

    # --------------------------------------------------------------------------------------- labeling
    def create_project(self, name: str, description: str = "") -> dict[str, Any]:
        return self.request("POST", "/v1/projects", json={"name": name, "description": description})  # type: ignore[no-any-return]

    def projects(self) -> list[dict[str, Any]]:
        return self.request("GET", "/v1/projects")["projects"]  # type: ignore[no-any-return]

    def batches(self, project_id: int) -> list[dict[str, Any]]:
        return self.request("GET", f"/v1/projects/{project_id}/batches")["batches"]  # type: ignore[no-any-return]

    def create_batch(
        self,
        project_id: int,
        *,
        name: str,
        idempotency_key: str,
        selection: dict[str, Any],
        priority: int = 3,
        model_run_id: int | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": name,
            "priority": priority,
            "idempotency_key": idempotency_key,
            "selection": selection,
        }
        if model_run_id is not None:
            body["model_run_id"] = model_run_id
        return self.request("POST", f"/v1/projects/{project_id}/batches", json=body)  # type: ignore[no-any-return]

    def export_batch(self, batch_id: int, format: str = "label_studio") -> Any:
        return self.request("GET", f"/v1/batches/{batch_id}/export", params={"format": format})

    def import_labels(self, batch_id: int, labels: Any) -> dict[str, Any]:
        return self.request("POST", f"/v1/batches/{batch_id}/labels", json=labels)  # type: ignore[no-any-return]

    # ------------------------------------------------------------ data, runs, jobs, projections (demo)
    # Forwarded by the gateway to ingest / inference / search (added for `blindspot demo`).
    def datasets(self) -> list[dict[str, Any]]:
        return self.request("GET", "/v1/datasets")  # type: ignore[no-any-return]

    def create_dataset(self, name: str, description: str = "") -> dict[str, Any]:
        return self.request("POST", "/v1/datasets", json={"name": name, "description": description})  # type: ignore[no-any-return]

    def upload_tar(self, dataset_id: int, chunks: Iterable[bytes]) -> dict[str, Any]:
        """Stream a tar of images (member path = global key) to the bulk upload path."""
        return self.request(  # type: ignore[no-any-return]
            "POST",
            f"/v1/datasets/{dataset_id}/rows:stream",
            content=chunks,
            headers={"Content-Type": "application/x-tar"},
        )

    def import_annotations(
        self, dataset_id: int, content: bytes, *, format: str = "coco", filename: str = "gt.json"
    ) -> dict[str, Any]:
        """Import ground truth (replaces the boxes of every image the file names); returns the job."""
        return self.request(  # type: ignore[no-any-return]
            "POST",
            f"/v1/datasets/{dataset_id}/annotations",
            params={"format": format},
            files={"file": (filename, content)},
        )

    def create_run(self, name: str, **fields: Any) -> dict[str, Any]:
        return self.request("POST", "/v1/runs", json={"name": name, **fields})  # type: ignore[no-any-return]

    def set_run_rows(self, run_id: int, items: list[dict[str, Any]]) -> dict[str, Any]:
        """``items``: ``[{"global_key" | "data_row_id", "split"}]``."""
        return self.request("PUT", f"/v1/runs/{run_id}/rows", json=items)  # type: ignore[no-any-return]

    def infer(self, run_id: int, data_row_ids: list[int] | None = None) -> dict[str, Any]:
        body = {"data_row_ids": data_row_ids} if data_row_ids else {}
        return self.request("POST", f"/v1/runs/{run_id}/infer", json=body)  # type: ignore[no-any-return]

    def job(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/jobs/{job_id}")  # type: ignore[no-any-return]

    def create_projection(
        self, *, model_run_id: int | None = None, dataset_id: int | None = None, method: str = "umap"
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"method": method}
        if model_run_id is not None:
            body["model_run_id"] = model_run_id
        if dataset_id is not None:
            body["dataset_id"] = dataset_id
        return self.request("POST", "/v1/projections", json=body)  # type: ignore[no-any-return]

    def projection(self, projection_id: int) -> dict[str, Any]:
        return self.request("GET", f"/v1/projections/{projection_id}")  # type: ignore[no-any-return]


__all__ = ["ApiError", "Client"]
