"""shared.db.pgcopy against a real Postgres: what the numpy-encoded binary COPY writes is what
psycopg reads back, NULLs, text, arrays with NULL elements and extreme values included."""

from __future__ import annotations

import math

import numpy as np
import psycopg
import pytest
from sqlalchemy.engine import make_url

from shared.db.pgcopy import Column, copy_in, copy_out_fixed

pytestmark = pytest.mark.integration


@pytest.fixture
def conn(db_url: str):  # type: ignore[no-untyped-def]
    dsn = make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as c:
        c.execute(
            "CREATE TEMP TABLE t (a int8, b int4, c int2, d float8, e bool, f text, g float8[], h int8)"
        )
        yield c
        c.rollback()


def test_encode_round_trips_every_type(conn) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    n = 500
    a = rng.integers(-(2**62), 2**62, n)
    b = rng.integers(-(2**31), 2**31 - 1, n)
    c = rng.integers(-(2**15), 2**15 - 1, n)
    d = rng.normal(0, 1e6, n)
    d[:3] = [np.inf, -np.inf, 0.0]
    e = rng.random(n) < 0.5
    f = rng.integers(0, 3, n)
    g = rng.random((n, 4))
    g[rng.random((n, 4)) < 0.2] = np.nan
    h_null = rng.random(n) < 0.3
    b_null = rng.random(n) < 0.1
    labels = ["TP", "", "ünïcødé"]
    copy_in(
        conn.cursor(),
        "t",
        [
            Column("a", "int8", a),
            Column("b", "int4", b, null=b_null),
            Column("c", "int2", c),
            Column("d", "float8", d, null=np.arange(n) == 7),
            Column("e", "bool", e),
            Column("f", "text", f, labels=labels, null=np.arange(n) == 9),
            Column("g", "float8[]", g, null=np.arange(n) % 50 == 1),
            Column("h", "int8", a, null=h_null),
        ],
    )
    got = conn.execute("SELECT a, b, c, d, e, f, g, h FROM t").fetchall()
    assert len(got) == n
    for i, (ga, gb, gc, gd, ge, gf, gg, gh) in enumerate(got):
        assert ga == a[i] and gc == c[i] and ge == bool(e[i])
        assert gb is None if b_null[i] else gb == b[i]
        assert gd is None if i == 7 else gd == d[i]
        assert gf is None if i == 9 else gf == labels[f[i]]
        if i % 50 == 1:
            assert gg is None
        else:
            assert [None if math.isnan(v) else v for v in g[i]] == gg
        assert gh is None if h_null[i] else gh == a[i]


def test_copy_out_fixed_equals_fetchall(conn) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    n = 300
    copy_in(
        conn.cursor(),
        "t",
        [Column("a", "int8", rng.integers(0, 2**40, n)), Column("d", "float8", rng.random(n))],
    )
    query = "SELECT a, d, (a %% 1000)::int4 FROM t WHERE a > %s ORDER BY a"
    a, d, m = copy_out_fixed(conn.cursor(), query, (2**39,), ["int8", "float8", "int4"])
    want = conn.execute(query, (2**39,)).fetchall()
    assert len(want) > 0
    assert [tuple(r) for r in want] == list(zip(a.tolist(), d.tolist(), m.tolist(), strict=True))
    with pytest.raises(ValueError, match="NULL"):
        copy_out_fixed(conn.cursor(), "SELECT NULL::int8, 1.0::float8", (), ["int8", "float8"])
