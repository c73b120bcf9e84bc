"""``blindspot eval coco`` itself, without typer: what the command does, and its start-up fast path.

``run_coco(gt, dets, out, per_image=, quiet=) -> exit code`` reads the files, evaluates, writes the
report and prints the summary; raises ``BadFile`` for a file that cannot be read or is not JSON (the
typer command in ``blindspot.cli.eval`` shows it as a bad parameter). ``run_fast(argv)`` is what
``blindspot.cli.main`` calls for ``eval coco ...`` before importing typer at all (see its docstring).
"""

from __future__ import annotations

import gc
import mmap
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from concurrent.futures import Executor

__all__ = ["BadFile", "run_coco", "run_fast"]


class BadFile(Exception):
    """A GT or detections file that cannot be read or is not valid JSON (the message names it)."""


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BadFile(f"cannot read {what} file {path}: {exc.strerror}") from exc


def _parse(data: bytes, path: Path, what: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadFile(f"{what} file {path} is not valid JSON: {exc}") from exc


def run_coco(gt: Path, dets: Path, out: Path, *, per_image: bool, quiet: bool) -> int:
    """Evaluate DETS against GT and write OUT; 0, or 2 (message on stderr) for malformed COCO content.

    The cyclic GC is off meanwhile: large object graphs (the GT JSON) and nothing cyclic to free.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _run(gt, dets, out, per_image=per_image, quiet=quiet)
    finally:
        if was_enabled:
            gc.enable()


def _load_dets(path: Path, pool: Executor | None = None) -> Any:
    """The detections file as columns (``parse_results``'s fast path) or parsed JSON; raises ``BadFile``.

    The file is mapped, not read: the scan reads the page cache in place (a 40 MB read is ~10^4 page
    faults and a copy, ~30 ms).
    """
    from shared.metrics.coco_json import parse_results

    try:
        with path.open("rb") as fh:
            mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)  # private: writable, never written
    except ValueError:  # an empty file cannot be mapped
        mapped = None
    except OSError as exc:
        raise BadFile(f"cannot read detections file {path}: {exc.strerror}") from exc
    if mapped is None:
        data = _read(path, "detections")
    else:
        with mapped:
            columns = parse_results(mapped, pool=pool)  # a plain result list straight to columns
            if columns is not None:
                return columns
            data = mapped[:]
    parsed = _parse(data, path, "detections")
    if isinstance(parsed, dict) and isinstance(parsed.get("annotations"), list):
        return parsed["annotations"]
    return parsed


def _run(gt: Path, dets: Path, out: Path, *, per_image: bool, quiet: bool) -> int:
    """Threads: the detections are scanned (a kernel, without the GIL; two halves at once) while this
    thread parses the ground truth; the matching is split in two; the accumulation runs beside the
    per-image report. The errors are those of one thread doing it in order: ground-truth file,
    detections file, then content."""
    from concurrent.futures import ThreadPoolExecutor

    import shared.metrics.coco_json  # noqa: F401 - numpy and what the detections' thread needs, before it starts

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="eval-coco") as pool:
        det_job = pool.submit(_load_dets, dets, pool)  # which scans half the file on the other thread
        # The rest of the engine is imported while the detections are scanned.
        from shared.errors import InvalidInput
        from shared.metrics.coco_input import flatten_columns, gt_columns
        from shared.metrics.coco_params import STAT_KEYS
        from shared.metrics.coco_report import evaluate_report

        gt_data = _parse(_read(gt, "ground truth"), gt, "ground truth")
        try:
            try:
                gt_cols = gt_columns(gt_data)
            finally:
                det_data = det_job.result()  # a detections file error comes before a content error
            result, report = evaluate_report(
                flatten_columns(gt_cols, det_data), per_image=per_image, pool=pool
            )
        except InvalidInput as exc:
            context = f" {exc.context}" if exc.context else ""
            print(f"error: {exc.detail}{context}", file=sys.stderr)
            return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(report)
    if not quiet:
        for key in STAT_KEYS:
            value = result.stats[key]
            print(f"{key:<10} {-1.0 if value is None else value:.4f}")
        print(f"wrote {out} ({time.perf_counter() - started:.2f}s)", file=sys.stderr)
    return 0


_FAST_VALUES = {"--gt": "gt", "--dets": "dets", "--out": "out"}
_FAST_FLAGS = {"--per-image": "per_image", "--quiet": "quiet", "-q": "quiet"}


def run_fast(argv: list[str]) -> int | None:
    """``eval coco ARGS`` without typer: the exit code, or ``None`` to let the typer command run it.

    Importing typer and building its app costs ~0.25 s (typer 0.29 makes a pydantic ``TypeAdapter``
    per option), as much as the rest of the start-up: this takes only the plain spellings of the
    options (``--gt``/``--dets``/``--out`` with a value, ``--per-image``, ``-q``/``--quiet``); help,
    unknown or missing options and unreadable files go to typer (``None``), so its messages stay
    the only ones.
    """
    values: dict[str, Any] = {"per_image": False, "quiet": False}
    i = 0
    while i < len(argv):
        arg, _, inline = argv[i].partition("=")
        if arg in _FAST_VALUES and _FAST_VALUES[arg] not in values:
            if inline:
                values[_FAST_VALUES[arg]] = Path(inline)
            elif i + 1 < len(argv):
                i += 1
                values[_FAST_VALUES[arg]] = Path(argv[i])
            else:
                return None
        elif argv[i] in _FAST_FLAGS:
            values[_FAST_FLAGS[argv[i]]] = True
        else:
            return None
        i += 1
    if not all(v in values for v in _FAST_VALUES.values()):
        return None
    try:
        return run_coco(
            values["gt"], values["dets"], values["out"], per_image=values["per_image"], quiet=values["quiet"]
        )
    except BadFile:
        return None
    except BrokenPipeError:  # `... | head`: quiet exit 1, as click does
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - replaces the closed pipe until exit
        return 1
