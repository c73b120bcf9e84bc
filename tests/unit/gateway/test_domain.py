"""Gateway rules without I/O: keys, scopes, filter validation, cursors, histogram edges."""

from __future__ import annotations

import pytest

from services.gateway import domain
from services.gateway.domain import Condition, Filter, Sort
from shared.errors import BadRequest


def test_key_roundtrip_and_hash() -> None:
    new = domain.generate_key()
    assert domain.parse_key(new.plaintext) == (new.prefix, new.secret)
    h = domain.hash_secret(new.secret, "pepper")
    assert len(h) == 64 and new.secret not in h
    assert domain.verify_secret(new.secret, "pepper", h)
    assert not domain.verify_secret(new.secret, "other-pepper", h)
    assert not domain.verify_secret(new.secret + "x", "pepper", h)
    for bad in ("", "bsk_", "bsk__x", "xyz_abc_def", "bsk_abc"):
        assert domain.parse_key(bad) is None


def test_scopes_nest() -> None:
    assert domain.has_scope(["admin"], "read") and domain.has_scope(["write"], "write")
    assert not domain.has_scope(["read"], "write") and not domain.has_scope([], "read")
    assert domain.implied_scopes(["write"]) == {"read", "write"}


@pytest.mark.parametrize(
    ("cond", "field"),
    [
        ({"field": "recal", "op": "lt", "value": 1}, "recal"),
        ({"field": "iou", "op": "lt"}, "iou"),
        ({"field": "iou", "op": "lt", "value": True}, "iou"),
        ({"field": "iou", "op": "in", "value": []}, "iou"),
        ({"field": "split", "op": "lt", "value": "train"}, "split"),
        ({"field": "annotation", "op": "eq", "value": "maybe"}, "annotation"),
        ({"field": "compare", "op": "eq", "value": {"other_run_id": 1, "status": "better"}}, "compare"),
        ({"field": "similar_to", "op": "eq", "value": {"data_row_ids": []}}, "similar_to"),
        ({"field": "confusion", "op": "eq", "value": {"gt_class": None, "pred_class": None}}, "confusion"),
        ({"field": "slice_id", "op": "eq", "value": "one"}, "slice_id"),
        ({"field": "split", "op": "eq", "value": "train", "class_name": "person"}, "split"),
    ],
)
def test_bad_conditions_name_their_field(cond: dict, field: str) -> None:
    with pytest.raises(BadRequest) as exc:
        domain.parse_filter(Filter(all=[Condition(**cond)]))
    assert exc.value.context["field"] == field
    assert repr(field) in exc.value.detail


def test_good_filter_parses() -> None:
    f = Filter.model_validate(
        {
            "all": [
                {"field": "recall", "class_name": "person", "op": "between", "value": [0.2, 0.3]},
                {"field": "metadata.weather", "op": "eq", "value": "rain"},
                {"field": "error_type", "op": "in", "value": ["cls", "bkg"], "min_confidence": 0.8},
            ],
            "any": [{"field": "class_in_gt", "op": "in", "value": ["dog", "cat"]}],
        }
    )
    parsed = domain.parse_filter(f)
    assert isinstance(parsed.all[0], domain.MetricCond) and parsed.all[0].column == "recall"
    assert parsed.class_names() == {"person", "dog", "cat"}


def test_sort_and_iou_grid() -> None:
    assert domain.sort_column(Sort(field="iou")) == "mean_iou"
    assert domain.sort_column(Sort()) is None
    with pytest.raises(BadRequest):
        domain.sort_column(Sort(field="nope"))
    assert domain.iou_bit(0.5) == 1 and domain.iou_bit(0.95) == 1 << 9 and domain.iou_bit(0.75) == 1 << 5
    with pytest.raises(BadRequest):
        domain.iou_bit(0.52)


def test_cursor_is_bound_to_its_query() -> None:
    sig = domain.query_signature(1, {"all": []}, {"field": "iou"})
    c = domain.encode_cursor({"sig": sig, "id": 5, "v": 0.25, "p": 0})
    assert domain.decode_cursor(c, sig)["id"] == 5
    with pytest.raises(BadRequest):
        domain.decode_cursor(c, domain.query_signature(2, {"all": []}, {"field": "iou"}))
    with pytest.raises(BadRequest):
        domain.decode_cursor("!!!", sig)


def test_histogram_edges_and_bucket_filters() -> None:
    assert domain.histogram_edges("recall", 4, None, None) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert domain.histogram_edges("recall", 10, None, None)[3] == 0.3  # no 0.30000000000000004
    assert domain.histogram_edges("fn", 10, 0, 4) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert domain.histogram_edges("fn", 2, 0, 7) == [0.0, 4.0, 8.0]
    assert domain.bucket_conditions("recall", "person", 0.2, 0.3, last=False) == [
        {"field": "recall", "class_name": "person", "op": "gte", "value": 0.2},
        {"field": "recall", "class_name": "person", "op": "lt", "value": 0.3},
    ]
    assert domain.bucket_conditions("recall", None, 0.9, 1.0, last=True)[1]["op"] == "lte"
    assert domain.bucket_conditions("recall", None, None, None, last=False) == [
        {"field": "recall", "op": "is_null"}
    ]
