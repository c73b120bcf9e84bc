"""The detection-JSON fast path gives exactly what orjson + float() give, or steps aside (None)."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest

from shared.metrics.coco_json import parse_results


def _expected(dets: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.array([d["image_id"] for d in dets], dtype=np.int64),
        np.array([d["category_id"] for d in dets], dtype=np.int64),
        np.array([d["bbox"] for d in dets], dtype=np.float64).reshape(-1, 4),
        np.array([d["score"] for d in dets], dtype=np.float64),
    )


def test_numbers_are_bit_identical_to_python_floats() -> None:
    rng = np.random.default_rng(0)
    vals = [0.1, 1e-7, -0.0, 0.0, 123456789012345678901234.5, 1.7976931348623157e308, 5e-324]
    vals += [0.30000000000000004, 2.5e22, 1e23, 9007199254740993.0, 1e-22, 123.456, -7.25]
    vals += (rng.random(3000) * 10.0 ** rng.integers(-30, 30, 3000)).tolist()
    vals += np.float32(rng.random(1000)).astype(float).tolist()
    vals += np.round(rng.random(1000), 3).tolist()
    dets = [
        {"image_id": i, "category_id": -3, "bbox": [v, -v, v, 1.0], "score": v} for i, v in enumerate(vals)
    ]
    cols = parse_results(orjson.dumps(dets))
    assert cols is not None
    img, cat, box, score = _expected(dets)
    assert np.array_equal(cols.image_id, img) and np.array_equal(cols.category_id, cat)
    assert np.array_equal(cols.bbox, box) and np.array_equal(cols.score, score)
    assert np.array_equal(np.signbit(cols.score), np.signbit(score))


def test_whitespace_key_order_exponents_and_extra_keys() -> None:
    text = (
        b' [ {"score": 1E2, "bbox" : [1, 2.50, 3e-1, 0.0004E+3],\n "category_id": 7, "image_id": 12,'
        b' "note": null, "extra": {"a": [1, "x]}\\"", {}], "b": true}},\r\n'
        b'\t{"image_id":1,"category_id":2,"bbox":[0,0,1,1],"score":0.12345678901234567890123, "id": 5} ] '
    )
    cols = parse_results(text)
    assert cols is not None
    img, cat, box, score = _expected(orjson.loads(text))
    assert cols.image_id.tolist() == img.tolist() == [12, 1]
    assert cols.category_id.tolist() == cat.tolist()
    assert np.array_equal(cols.bbox, box) and np.array_equal(cols.score, score)


def test_empty_list() -> None:
    cols = parse_results(b"[ ]")
    assert cols is not None and cols.bbox.shape == (0, 4) and cols.score.shape == (0,)


@pytest.mark.parametrize(
    "text",
    [
        b'{"annotations": []}',
        b'[{"image_id":1.5,"category_id":2,"bbox":[0,0,1,1],"score":1}]',
        b'[{"image_id":"1","category_id":2,"bbox":[0,0,1,1],"score":1}]',
        b'[{"image_id":1,"category_id":2,"bbox":[0,0,1],"score":1}]',
        b'[{"image_id":1,"category_id":2,"bbox":[0,0,1,1,5],"score":1}]',
        b'[{"image_id":1,"category_id":2,"bbox":[0,0,1,1]}]',
        b'[{"image_id":1,"category_id":2,"bbox":[0,0,1,1],"score":1}',
        b'[{"image_id":1,"category_id":2,"bbox":[0,0,1,1],"score":1,"score":2}]',
        b'[{"image_id":1,"category_id":2,"bbox":[0,0,1,1],"score":.5}]',
        b'[{"image_id":1,"category_id":2,"bbox":[0,0,1,1],"score":1}] x',
        b"",
    ],
)
def test_anything_else_falls_back(text: bytes) -> None:
    assert parse_results(text) is None


def _split_cases() -> list[tuple[str, bytes, list[dict]]]:
    rng = np.random.default_rng(3)
    dets = [
        {
            "image_id": int(i // 7),
            "category_id": int(rng.integers(1, 9)),
            "bbox": [float(x) for x in rng.random(4) * 10.0 ** rng.integers(-25, 25, 4)],
            "score": float(rng.random()),
        }
        for i in range(400)
    ]
    slow = [dict(d, score=float("1e-30") * d["score"]) for d in dets]  # past the exact fast path
    # An extra key whose string holds what the split looks for, right after the middle of the file.
    tricky = [dict(d, note="x},{y" * 3) for d in dets]
    return [
        ("compact", orjson.dumps(dets), dets),
        ("json.dumps", json.dumps(dets).encode(), dets),
        ("indented", orjson.dumps(dets, option=orjson.OPT_INDENT_2), dets),
        ("slow numbers", json.dumps(slow).encode(), slow),
        ("split guess inside a string", orjson.dumps(tricky), tricky),
    ]


@pytest.mark.parametrize("name", [c[0] for c in _split_cases()])
def test_two_halves_at_once_give_the_one_pass_columns(name: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    text, dets = next((t, d) for n, t, d in _split_cases() if n == name)
    one = parse_results(text)
    with ThreadPoolExecutor(max_workers=1) as pool:
        two = parse_results(text, pool=pool, min_split=0)
    assert one is not None and two is not None
    img, cat, box, score = _expected(dets)
    for cols in (one, two):
        assert np.array_equal(cols.image_id, img) and np.array_equal(cols.category_id, cat)
        assert np.array_equal(cols.bbox, box) and np.array_equal(cols.score, score)
        assert cols.bbox.flags.c_contiguous and cols.score.flags.c_contiguous


@pytest.mark.parametrize("where", [0.25, 0.75])
def test_two_halves_fall_back_on_a_broken_half(where: float) -> None:
    from concurrent.futures import ThreadPoolExecutor

    text = orjson.dumps(
        [{"image_id": i, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5} for i in range(300)]
    )
    at = text.index(b'"score"', int(len(text) * where))
    broken = text[:at] + b'"score":"high"' + text[at + len(b'"score":0.5') :]
    with ThreadPoolExecutor(max_workers=1) as pool:
        assert parse_results(broken, pool=pool, min_split=0) is None
        assert parse_results(text, pool=pool, min_split=0) is not None
