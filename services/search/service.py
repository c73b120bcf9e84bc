"""Query-side use cases: similarity search and slices. Services flush; the edge commits."""

from __future__ import annotations

import numpy as np
from sqlalchemy.orm import Session

from services.search import repository as repo
from services.search.domain import (
    Ranked,
    decode_cursor,
    encode_cursor,
    max_similarity,
    mean_vector,
    merge_best,
    object_point_id,
    vector_filter,
)
from services.search.schemas import (
    ObjectHit,
    RowFilter,
    SimilarRequest,
    SimilarResponse,
    SimilarRow,
    SliceCreate,
    SliceList,
    SliceOut,
    SliceRows,
    SliceSimilarity,
)
from shared.adapters.vectors import Cond, VectorFilter, VectorStore
from shared.db.models import Slice
from shared.errors import BadRequest, NotFound
from shared.settings import Settings

IMAGES_OBJECTS_PER_ROW = 4  # over-fetch when ranking objects but reporting rows


def collections(settings: Settings) -> tuple[str, str]:
    return settings.qdrant.image_collection, settings.qdrant.object_collection


# ---------------------------------------------------------------------------------------------------
# Similarity
# ---------------------------------------------------------------------------------------------------


def anchor_vectors(
    store: VectorStore, settings: Settings, workspace_id: int, req: SimilarRequest
) -> tuple[np.ndarray, set[int]]:
    """Vectors of the anchors (rows and objects) and the anchor rows. NotFound names missing anchors."""
    images, objects = collections(settings)
    vecs: list[np.ndarray] = []
    rows: set[int] = set()
    if req.data_row_ids:
        recs = store.retrieve(images, req.data_row_ids, workspace_id=workspace_id)
        found = {int(r.id) for r in recs}
        missing = sorted(set(req.data_row_ids) - found)
        if missing:
            raise NotFound(
                f"data rows {missing[:20]} are not in this workspace or not embedded yet",
                context={"data_row_ids": missing[:100]},
            )
        vecs += [r.vector for r in recs if r.vector is not None]
        rows |= found
    if req.object_ids:
        pids = {object_point_id(o.model_run_id, o.kind.value, o.object_id): o for o in req.object_ids}
        recs = store.retrieve(objects, list(pids), workspace_id=workspace_id)
        found_p = {str(r.id) for r in recs}
        missing_o = [pids[p].model_dump(mode="json") for p in pids if p not in found_p]
        if missing_o:
            raise NotFound(
                f"objects {missing_o[:10]} are not in this workspace or not embedded yet",
                context={"object_ids": missing_o[:100]},
            )
        vecs += [r.vector for r in recs if r.vector is not None]
        rows |= {int(r.payload["data_row_id"]) for r in recs}
    return np.stack(vecs).astype(np.float32), rows


def ranked_similar(
    session: Session,
    store: VectorStore,
    settings: Settings,
    workspace_id: int,
    *,
    vectors: np.ndarray,
    row_filter: RowFilter,
    target: str,
    window: int,
    score_threshold: float | None,
    exclude: set[int],
    dataset_id: int | None = None,
    model_run_id: int | None = None,
) -> list[Ranked]:
    """The first ``window`` rows nearest to any of ``vectors`` that pass the filter, best first.

    Qdrant filters on the payload (workspace always); Postgres then re-checks the filter on the
    candidates, so a stale payload can drop a row but never let one through.
    """
    images, objects = collections(settings)
    vf = vector_filter(row_filter, target=target, dataset_id=dataset_id)
    if model_run_id is not None and row_filter.model_run_id != model_run_id:
        key = "runs" if target == "images" else "model_run_id"
        vf = VectorFilter(must=(*vf.must, Cond(key, (model_run_id,))))
    k = window + len(exclude)
    if target == "objects":
        k *= IMAGES_OBJECTS_PER_ROW
    k = min(k, settings.search.max_window * IMAGES_OBJECTS_PER_ROW)
    lists = store.search(
        images if target == "images" else objects,
        vectors,
        workspace_id=workspace_id,
        filter=vf,
        limit=k,
        score_threshold=score_threshold,
    )
    ranked = merge_best(lists, exclude=exclude, per_object=target == "objects")[:window]
    ok = set(
        repo.filter_rows(
            session,
            workspace_id,
            row_filter,
            dataset_id=dataset_id,
            model_run_id=model_run_id,
            ids=[r.data_row_id for r in ranked],
        )
    )
    return [r for r in ranked if r.data_row_id in ok]


def _row(r: Ranked) -> SimilarRow:
    obj = ObjectHit.model_validate(r.object) if r.object else None
    return SimilarRow(data_row_id=r.data_row_id, score=round(r.score, 6), object=obj)


def similar(
    session: Session, store: VectorStore, settings: Settings, workspace_id: int, req: SimilarRequest
) -> SimilarResponse:
    offset = decode_cursor(req.cursor)
    window = offset + req.limit
    if window > settings.search.max_window:
        raise BadRequest(
            f"results page past {settings.search.max_window} (offset {offset} + limit {req.limit});"
            " narrow the query with filters or a score threshold"
        )
    vectors, anchor_rows = anchor_vectors(store, settings, workspace_id, req)
    if req.combine == "mean":
        vectors = mean_vector(vectors)
    ranked = ranked_similar(
        session,
        store,
        settings,
        workspace_id,
        vectors=vectors,
        row_filter=req.filter,
        target=req.target,
        window=window + 1,
        score_threshold=req.score_threshold,
        exclude=set() if req.include_anchors else anchor_rows,
    )
    page = ranked[offset:window]
    more = len(ranked) > window
    return SimilarResponse(rows=[_row(r) for r in page], next_cursor=encode_cursor(window) if more else None)


# ---------------------------------------------------------------------------------------------------
# Slices
# ---------------------------------------------------------------------------------------------------


def _out(s: Slice, members: int) -> SliceOut:
    sim = SliceSimilarity.model_validate(s.similarity) if s.similarity else None
    return SliceOut(
        id=s.id,
        name=s.name,
        dataset_id=s.dataset_id,
        model_run_id=s.model_run_id,
        filter=s.filter,
        similarity=sim,
        members=members,
    )


def create_slice(
    session: Session, store: VectorStore, settings: Settings, workspace_id: int, body: SliceCreate
) -> SliceOut:
    if body.dataset_id is not None and repo.get_dataset(session, workspace_id, body.dataset_id) is None:
        raise NotFound(f"dataset {body.dataset_id} not found")
    if body.model_run_id is not None and repo.get_run(session, workspace_id, body.model_run_id) is None:
        raise NotFound(f"model run {body.model_run_id} not found")
    if body.similarity is not None:
        images, _ = collections(settings)
        anchors = body.similarity.data_row_ids
        found = {
            int(r.id) for r in store.retrieve(images, anchors, workspace_id=workspace_id, with_vectors=False)
        }
        missing = sorted(set(anchors) - found)
        if missing:
            raise NotFound(f"similarity anchors {missing[:20]} are not in this workspace or not embedded yet")
    s = repo.create_slice(
        session,
        workspace_id,
        name=body.name,
        dataset_id=body.dataset_id,
        model_run_id=body.model_run_id,
        filter=body.filter,
        similarity=body.similarity.model_dump() if body.similarity else None,
    )
    return _out(s, 0)


def list_slices(session: Session, workspace_id: int) -> SliceList:
    return SliceList(slices=[_out(s, n) for s, n in repo.list_slices(session, workspace_id)])


def load_slice(session: Session, workspace_id: int, slice_id: int) -> Slice:
    s = repo.get_slice(session, workspace_id, slice_id)
    if s is None:
        raise NotFound(f"slice {slice_id} not found")
    return s


def delete_slice(session: Session, workspace_id: int, slice_id: int) -> None:
    repo.delete_slice(session, load_slice(session, workspace_id, slice_id))


def slice_rows(
    session: Session,
    store: VectorStore,
    settings: Settings,
    workspace_id: int,
    slice_id: int,
    *,
    cursor: str | None,
    limit: int,
) -> SliceRows:
    """A slice's rows, evaluated now: the filter (SQL), the similarity anchor (Qdrant) if any, plus
    the members collected at ingest. Without similarity: ascending row ids, keyset cursor. With it:
    best score first (members no longer above the threshold follow, score null), offset cursor."""
    s = load_slice(session, workspace_id, slice_id)
    f = RowFilter.model_validate(s.filter)
    if s.similarity is None:
        after = decode_cursor(cursor)
        ids = repo.filter_rows(
            session,
            workspace_id,
            f,
            dataset_id=s.dataset_id,
            model_run_id=s.model_run_id,
            or_slice_members=s.id,
            after_id=after,
            limit=limit + 1,
        )
        page = ids[:limit]
        nxt = encode_cursor(page[-1]) if len(ids) > limit else None
        return SliceRows(rows=[SimilarRow(data_row_id=i, score=None) for i in page], next_cursor=nxt)
    sim = SliceSimilarity.model_validate(s.similarity)
    images, _ = collections(settings)
    recs = store.retrieve(images, sim.data_row_ids, workspace_id=workspace_id)
    ranked: list[Ranked] = []
    if recs:
        ranked = ranked_similar(
            session,
            store,
            settings,
            workspace_id,
            vectors=np.stack([r.vector for r in recs if r.vector is not None]),
            row_filter=f,
            target="images",
            window=settings.search.slice_max_rows,
            score_threshold=sim.score_threshold,
            exclude=set(),
            dataset_id=s.dataset_id,
            model_run_id=s.model_run_id,
        )
    seen = {r.data_row_id for r in ranked}
    out = [_row(r) for r in ranked]
    out += [SimilarRow(data_row_id=m, score=None) for m in repo.member_ids(session, s.id) if m not in seen]
    offset = decode_cursor(cursor)
    return SliceRows(
        rows=out[offset : offset + limit],
        next_cursor=encode_cursor(offset + limit) if len(out) > offset + limit else None,
    )


def match_slices(
    session: Session, store: VectorStore, settings: Settings, workspace_id: int, row_ids: list[int]
) -> dict[int, int]:
    """Evaluate every slice of the workspace on new rows; insert the matches as members.

    Returns {slice id: rows newly added}. Rows not embedded yet skip the similarity slices (the
    embedding task sends this task again once they are)."""
    slices = repo.workspace_slices(session, workspace_id)
    if not slices or not row_ids:
        return {}
    images, _ = collections(settings)
    vecs: dict[int, np.ndarray] = {}
    anchor_cache: dict[int, np.ndarray] = {}
    if any(s.similarity for s in slices):
        vecs = {
            int(r.id): r.vector
            for r in store.retrieve(images, row_ids, workspace_id=workspace_id)
            if r.vector is not None
        }
    added: dict[int, int] = {}
    for s in slices:
        f = RowFilter.model_validate(s.filter)
        cands = repo.filter_rows(
            session, workspace_id, f, dataset_id=s.dataset_id, model_run_id=s.model_run_id, ids=row_ids
        )
        if s.similarity:
            sim = SliceSimilarity.model_validate(s.similarity)
            need = [a for a in sim.data_row_ids if a not in anchor_cache]
            for r in store.retrieve(images, need, workspace_id=workspace_id):
                if r.vector is not None:
                    anchor_cache[int(r.id)] = r.vector
            anchors = [anchor_cache[a] for a in sim.data_row_ids if a in anchor_cache]
            cands = [c for c in cands if c in vecs]
            if not anchors or not cands:
                cands = []
            else:
                best = max_similarity(np.stack([vecs[c] for c in cands]), np.stack(anchors))
                cands = [c for c, b in zip(cands, best, strict=True) if b >= sim.score_threshold]
        if cands:
            added[s.id] = repo.add_members(session, s.id, cands)
    return added
