"""One partition per model run for the run's result tables, and the bulk-load path that uses it.

``object_matches``, ``row_metrics`` and ``row_class_metrics`` are LIST-partitioned by ``model_run_id``; a
run's partitions are ``<table>_r<run id>`` (migration metrics02). A trigger on ``model_runs`` creates
them attached, with every index of the parent, so anything may write through the parent tables.

Bulk first computation (Postgres' advice for bulk loads: load, then index). The gallery needs ~20 sort
indexes on these tables; maintaining them row by row was ~70% of a metrics row task. When a large run
(``settings.metrics.bulk_load_min_rows`` rows or more) is computed for the first time, the metrics service:

1. :func:`begin_bulk_load` — swaps the run's still-empty partitions for *loading tables* of the same
   name: detached, with only the indexes writing needs (those that find a row set's rows to replace:
   the ``data_row_id`` indexes, and ``row_metrics``' primary key, which leads with it). The other
   tables' primary keys only guard uniqueness, which the row task's delete-then-insert keeps (and
   ``row_metrics``' key, one row per member row, makes the later of two overlapping row sets in flight
   fail and retry); maintaining them row by row was a third of the Postgres CPU of a row task;
2. writes into them by name (:func:`partition`), as it always does;
3. when the run is aggregated: :func:`start_index_build` builds the remaining indexes (several at once,
   on separate connections; a deferred primary key as a unique index) and analyzes the tables while the
   aggregation reads the matches, then :func:`attach` makes each such unique index the table's primary
   key (no scan: its columns are already NOT NULL) and attaches the tables in the aggregation's
   transaction (rows and per-class metrics become visible together); Postgres adopts the matching
   indexes instead of rebuilding them, and the CHECK constraint spares the validation scan.
   :func:`finish_bulk_load` does both in one call.

While a run is loading, its rows are not visible through the parent tables (the gallery shows it as
computing: the run status has ``loading: true``). Writes keep working in both states.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import psycopg

RESULT_TABLES = ("object_matches", "row_metrics", "row_class_metrics")

State = Literal["attached", "loading", "missing"]

# Advisory lock (run id, this key) around swaps and attaches of a run's partitions.
_LOCK_KEY = -2


def partition(table: str, model_run_id: int) -> str:
    """Name of the run's partition (or loading table) of ``table``."""
    if table not in RESULT_TABLES:
        raise ValueError(f"{table} is not partitioned per run")
    return f"{table}_r{int(model_run_id)}"


def state(conn: psycopg.Connection[Any], model_run_id: int) -> State:
    """``attached`` (visible through the parents), ``loading`` (detached tables) or ``missing``."""
    names = [partition(t, model_run_id) for t in RESULT_TABLES]
    rows = conn.execute(
        "SELECT c.relname, EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)"
        " FROM pg_class c WHERE c.relname = ANY(%s) AND c.relkind = 'r'"
        " AND c.relnamespace = current_schema()::regnamespace",
        (names,),
    ).fetchall()
    if len(rows) < len(names):
        return "missing"
    return "attached" if all(attached for _, attached in rows) else "loading"


def leaf_partition(conn: psycopg.Connection[Any], table: str, key: int) -> str:
    """The HASH partition of ``table`` that holds partition key ``key`` (``table`` itself if none).

    A COPY into the leaf keeps Postgres' multi-row insert path, which a COPY through a partitioned
    parent with a transition-table trigger loses (migration ingest02 puts the checks on the leaves).
    """
    row = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid,"
        " LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid), 'modulus (\\d+), remainder (\\d+)') b"
        " WHERE i.inhparent = CAST(%s AS regclass)"
        " AND satisfies_hash_partition(i.inhparent, b[1]::int, b[2]::int, %s::int8)",
        (table, int(key)),
    ).fetchone()
    return table if row is None else str(row[0])


def lock_run(conn: psycopg.Connection[Any], model_run_id: int) -> None:
    """The transaction-level advisory lock around swaps and attaches of the run's partitions.

    Take it before reading or writing the run's tables in a transaction that may swap them.
    """
    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (int(model_run_id % 2_147_483_647), _LOCK_KEY))


_WRITE_KEYS = (["data_row_id"], ["model_run_id", "data_row_id"])  # a row set's rows, by row id


def _indexes(conn: psycopg.Connection[Any], rel: str) -> list[tuple[str, str, list[str], str | None]]:
    """(name, CREATE INDEX statement, columns, constraint type or None) of each index of ``rel``."""
    rows = conn.execute(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid),"
        " (SELECT array_agg(a.attname ORDER BY k.n) FROM unnest(i.indkey) WITH ORDINALITY k(attnum, n)"
        "  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum),"
        " (SELECT k.contype::text FROM pg_constraint k WHERE k.conindid = i.indexrelid LIMIT 1)"
        " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE i.indrelid = CAST(%s AS regclass)"
        " ORDER BY c.relname",
        (rel,),
    ).fetchall()
    return [(name, ddl, list(cols), contype) for name, ddl, cols, contype in rows]


def _parent_indexes(conn: psycopg.Connection[Any], table: str) -> list[tuple[str, str, bool]]:
    """(name, CREATE INDEX statement, needed while loading) of the parent's indexes, constraints excluded."""
    return [
        (name, ddl, cols in _WRITE_KEYS) for name, ddl, cols, contype in _indexes(conn, table) if not contype
    ]


def _primary_key(conn: psycopg.Connection[Any], rel: str) -> list[str]:
    """The columns of ``rel``'s primary key, in order (empty without one)."""
    return next((cols for _, _, cols, contype in _indexes(conn, rel) if contype == "p"), [])


def _primary_key_index(table: str, model_run_id: int, columns: list[str]) -> str:
    """The deferred primary key of a loading table, built as the unique index the constraint will use."""
    part = partition(table, model_run_id)
    return f"CREATE UNIQUE INDEX IF NOT EXISTS {part}_pkey ON {part} ({', '.join(columns)})"


def _index_name(parent_index: str, model_run_id: int) -> str:
    name = f"{parent_index}_r{int(model_run_id)}"
    if len(name) <= 63:
        return name
    return f"ix_{hashlib.sha1(name.encode()).hexdigest()[:20]}_r{int(model_run_id)}"


def _clone_index(ddl: str, parent_index: str, table: str, model_run_id: int) -> str:
    """The parent's ``CREATE INDEX`` statement, for the run's table."""
    part = partition(table, model_run_id)
    head, sep, tail = ddl.partition(" USING ")
    if not sep or f"INDEX {parent_index} ON " not in head:
        raise ValueError(f"unexpected index definition: {ddl}")
    return f"CREATE INDEX IF NOT EXISTS {_index_name(parent_index, model_run_id)} ON {part} USING {tail}"


def begin_bulk_load(conn: psycopg.Connection[Any], model_run_id: int, lock_timeout_ms: int = 2000) -> bool:
    """Swap the run's empty, attached partitions for loading tables; True when the run is loading.

    Runs in the caller's transaction, which should be short: detaching locks the parent tables (ACCESS
    EXCLUSIVE) until commit. Gives up (False, nothing changed) if that lock is not granted within
    ``lock_timeout_ms``, or when a partition already holds rows (the run is not new).
    """
    lock_run(conn, model_run_id)
    current = state(conn, model_run_id)
    if current != "attached":
        return current == "loading"
    for table in RESULT_TABLES:
        if conn.execute(f"SELECT EXISTS (SELECT 1 FROM {partition(table, model_run_id)})").fetchone()[0]:  # type: ignore[index]
            return False
    conn.execute(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
    try:
        with conn.transaction():  # a savepoint: a lock timeout leaves the partitions as they were
            for table in RESULT_TABLES:
                part = partition(table, model_run_id)
                conn.execute(f"ALTER TABLE {table} DETACH PARTITION {part}")
                conn.execute(f"DROP TABLE {part}")
                conn.execute(f"CREATE TABLE {part} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
                conn.execute(
                    f"ALTER TABLE {part} ADD CONSTRAINT ck_{part}_run CHECK (model_run_id = {int(model_run_id)})"
                )
                pk = _primary_key(conn, table)
                if pk in _WRITE_KEYS:  # the others are built at the end (start_index_build)
                    conn.execute(
                        f"ALTER TABLE {part} ADD CONSTRAINT {part}_pkey PRIMARY KEY ({', '.join(pk)})"
                    )
                for name, ddl, for_writes in _parent_indexes(conn, table):
                    if for_writes:
                        conn.execute(_clone_index(ddl, name, table, model_run_id))
    except psycopg.errors.LockNotAvailable:
        conn.execute("SET LOCAL lock_timeout = 0")
        return False
    conn.execute("SET LOCAL lock_timeout = 0")
    return True


class IndexBuild:
    """The loading tables' remaining indexes and statistics, being built in background threads.

    Each job runs on its own autocommit connection (a CREATE INDEX only blocks writes to its table;
    readers, such as the run's aggregation, go on). ``wait()`` re-raises the first failure.
    """

    def __init__(self, conninfo: str, jobs: list[str], parallel: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="bulk-index")
        self._futures = [self._pool.submit(self._run, conninfo, sql) for sql in jobs]

    @staticmethod
    def _run(conninfo: str, sql: str) -> None:
        with psycopg.connect(conninfo, autocommit=True) as c:
            c.execute("SET statement_timeout = 0")
            c.execute(sql)  # type: ignore[arg-type]

    def wait(self) -> None:
        try:
            for f in self._futures:
                f.result()
        finally:
            self.close()

    def close(self) -> None:
        """Stop starting jobs; wait for those running (idempotent, never raises)."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def start_index_build(conninfo: str, model_run_id: int, parallel: int = 2) -> IndexBuild | None:
    """Start building a loading run's remaining indexes (and ANALYZE); None when it is not loading."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if state(conn, model_run_id) != "loading":
            return None
        # Deferred primary keys first: object_matches' is the largest single build (~1.2 s at 100k rows).
        jobs = [
            _primary_key_index(table, model_run_id, pk)
            for table in RESULT_TABLES
            if (pk := _primary_key(conn, table)) and not _primary_key(conn, partition(table, model_run_id))
        ]
        for table in RESULT_TABLES:
            jobs += [
                _clone_index(ddl, name, table, model_run_id)
                for name, ddl, for_writes in _parent_indexes(conn, table)
                if not for_writes
            ]
            jobs.append(f"ANALYZE {partition(table, model_run_id)}")
    return IndexBuild(conninfo, jobs, parallel)


def attach(conn: psycopg.Connection[Any], model_run_id: int) -> bool:
    """ATTACH the run's loading tables (in the caller's transaction); True if anything was attached.

    Postgres adopts the matching indexes already built; missing ones would be built here, under the
    ACCESS EXCLUSIVE lock, so build them first (:func:`start_index_build`).
    """
    conn.execute("SET LOCAL statement_timeout = 0")
    lock_run(conn, model_run_id)
    if state(conn, model_run_id) != "loading":
        return False
    for table in RESULT_TABLES:
        part = partition(table, model_run_id)
        attached = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = CAST(%s AS regclass))", (part,)
        ).fetchone()
        if attached is not None and attached[0]:
            continue
        pk = _primary_key(conn, table)
        if pk and not _primary_key(conn, part):
            # The unique index start_index_build made becomes the key (built here, under the lock, if not).
            conn.execute(_primary_key_index(table, model_run_id, pk))  # type: ignore[arg-type]
            conn.execute(f"ALTER TABLE {part} ADD CONSTRAINT {part}_pkey PRIMARY KEY USING INDEX {part}_pkey")  # type: ignore[arg-type]
        conn.execute(f"ALTER TABLE {table} ATTACH PARTITION {part} FOR VALUES IN ({int(model_run_id)})")  # type: ignore[arg-type]
    return True


def finish_bulk_load(conninfo: str, model_run_id: int, parallel: int = 2) -> bool:
    """Build the loading tables' remaining indexes, analyze and attach them; True if it attached."""
    build = start_index_build(conninfo, model_run_id, parallel)
    if build is None:
        return False
    build.wait()
    with psycopg.connect(conninfo) as conn, conn.transaction():
        return attach(conn, model_run_id)
