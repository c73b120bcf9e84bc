from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from services.search.domain import (
    RowFacts,
    crop_box,
    decode,
    decode_cursor,
    encode_cursor,
    image_payload,
    max_similarity,
    mean_vector,
    merge_best,
    project_2d,
    vector_filter,
)
from services.search.schemas import RowFilter, SimilarRequest, SliceCreate
from shared.adapters.vectors import Cond, Hit
from shared.errors import BadRequest, InvalidInput


def test_cursor_round_trip_and_rejects_forgeries() -> None:
    for n in (0, 1, 4999, 10**12):
        assert decode_cursor(encode_cursor(n)) == n
    assert decode_cursor(None) == 0
    for bad in ("abc", "djI6MTA", encode_cursor(5)[:-2] + "!!"):
        with pytest.raises(BadRequest):
            decode_cursor(bad)


def test_merge_best_is_exact_top_k() -> None:
    """Union of per-anchor top-k lists, best score per row == brute force top-k of max scores."""
    rng = np.random.default_rng(1)
    scores = rng.random((3, 200))  # 3 anchors x 200 rows
    k = 25
    lists = []
    for a in range(3):
        order = np.argsort(-scores[a])[:k]
        lists.append(
            [Hit(id=int(r), score=float(scores[a, r]), payload={"data_row_id": int(r)}) for r in order]
        )
    merged = merge_best(lists)[:k]
    best = scores.max(axis=0)
    expected = np.argsort(-best)[:k]
    assert [m.data_row_id for m in merged] == expected.tolist()
    assert merge_best(lists, exclude={int(expected[0])})[0].data_row_id == int(expected[1])


def test_vector_filter_maps_every_field() -> None:
    f = RowFilter(
        annotation="none",
        dataset_ids=[3, 4],
        model_run_id=9,
        splits=["validation"],  # type: ignore[list-item]
        class_names=["cat"],
        error_types=["bkg"],  # type: ignore[list-item]
        metadata={"camera": "front", "night": True, "lux": 0.5},
    )
    img = set(vector_filter(f, target="images").must)
    assert img == {
        Cond("labeled", (0,)),
        Cond("dataset_id", (3, 4)),
        Cond("runs", (9,)),
        Cond("splits", ("9:validation",)),
        Cond("errors", ("9:bkg",)),
        Cond("classes", ("cat",)),
        Cond("meta.camera", ("front",)),
        Cond("meta.night", ("true",)),
    }  # floats are checked in SQL only
    obj = set(vector_filter(f, target="objects").must)
    assert Cond("error_type", ("bkg",)) in obj and Cond("split", ("validation",)) in obj
    # a slice's dataset intersects the filter's datasets
    assert Cond("dataset_id", (4,)) in vector_filter(f, target="images", dataset_id=4).must
    assert Cond("dataset_id", (-1,)) in vector_filter(f, target="images", dataset_id=5).must


def test_request_validation_names_the_problem() -> None:
    with pytest.raises(ValueError, match=r"needs filter\.model_run_id"):
        RowFilter(splits=["train"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="give data_row_ids or object_ids"):
        SimilarRequest()
    with pytest.raises(ValueError, match="cannot hold"):
        SliceCreate(name="s", filter={"iou_lt": 0.3})


def test_crop_box_context_and_tiny_boxes() -> None:
    img = Image.new("RGB", (100, 80))
    c = crop_box(img, (10, 10, 20, 20), context=0.1, min_px=4)
    assert c is not None and c.size == (24, 24)
    edge = crop_box(img, (90, 70, 20, 20), context=0.1, min_px=4)
    assert edge is not None and edge.size == (12, 12)  # 88..100 x 68..80: clipped to the image
    assert crop_box(img, (10, 10, 3, 20), context=0.1, min_px=4) is None
    assert crop_box(img, (200, 200, 10, 10), context=0.1, min_px=4) is None


def test_decode_rejects_garbage() -> None:
    with pytest.raises(InvalidInput):
        decode(b"not an image")


def test_payload_and_similarity_math() -> None:
    facts = RowFacts(1, 2, 3, False, {"a": True, "b": 1.5, "c": "x"}, {"cat"}, {9}, {"9:test"}, {"9:bkg"})
    p = image_payload(facts)
    assert p["labeled"] == 0 and p["meta"] == {"a": "true", "c": "x"} and p["errors"] == ["9:bkg"]
    v = np.eye(4, dtype=np.float32)
    assert mean_vector(v[:2]).shape == (1, 4)
    np.testing.assert_allclose(np.linalg.norm(mean_vector(v[:2])), 1.0, rtol=1e-6)
    np.testing.assert_allclose(max_similarity(v, v[:2]), [1, 1, 0, 0])
    with pytest.raises(InvalidInput):
        mean_vector(np.stack([v[0], -v[0]]))


def test_projection_pca_and_umap_shapes() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(30, 8)) + 5
    b = rng.normal(size=(30, 8)) - 5
    x = np.vstack([a, b])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    pca = project_2d(x, "pca")
    assert pca.shape == (60, 2) and np.isfinite(pca).all()
    # the two clusters separate along the first axis
    assert np.sign(pca[:30, 0].mean()) != np.sign(pca[30:, 0].mean())
    assert project_2d(x[:1], "umap").shape == (1, 2)
    assert project_2d(np.zeros((0, 8)), "pca").shape == (0, 2)


@pytest.mark.slow
def test_umap_separates_clusters() -> None:
    """UMAP (umap-learn, cosine) keeps two clusters apart in 2-D (~20 s: numba compiles on first use)."""
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(size=(40, 32)) + 3, rng.normal(size=(40, 32)) - 3])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = project_2d(x, "umap")
    assert y.shape == (80, 2) and np.isfinite(y).all()
    assert silhouette_score(y, [0] * 40 + [1] * 40) > 0.5
