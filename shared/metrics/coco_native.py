"""Where the COCO engine's kernels come from: an ahead-of-time build when there is one, else numba's JIT.

``kernels() -> CocoKernels`` (cached): the eleven kernels the dataset-level engine calls
(``coco_json_kernels.scan`` / ``scan_part``, ``coco_kernels.sort_runs_by_score`` / ``order_detections`` /
``merge_groups`` / ``match_groups_status`` / ``match_outputs`` / ``match_groups_status_into``,
``coco_accumulate.accumulate_all_uniform`` / ``to_input_order``, ``coco_report_kernels.per_image_json``).
Every one releases the GIL (the JIT's ``nogil=True``; the AOT build is compiled so), so the engine can
run two of them at once on two threads.

Why: a process that evaluates one file (``blindspot eval coco``) otherwise pays ~0.3 s to import numba
and ~0.45 s to set numba's compiler up before it can load even a cached kernel; the AOT module needs
numpy only. ``build_aot()`` (``make coco-aot``; needs setuptools, a dev dependency, and a C compiler)
compiles the same Python kernels with ``numba.pycc`` into ``_coco_aot_<hash>.*.so`` beside this file,
where ``<hash>`` covers the kernel sources and the Python/numpy/numba versions: editing a kernel
makes the old build invisible (the JIT is used until the next build), so the two never disagree.
The AOT entry points do not check their arguments, so ``kernels()`` wraps each with a check of the
dtypes/ranks/layouts it was compiled for (recorded in ``_coco_aot_<hash>.json``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.util
import json
import platform
import shutil
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CocoKernels", "aot_module_name", "build_aot", "kernels"]

_HERE = Path(__file__).resolve().parent
# The kernels and the constants they compile in.
_SOURCES = (
    "coco_json_kernels.py",
    "coco_kernels.py",
    "coco_accumulate.py",
    "coco_report_kernels.py",
    "coco_params.py",
)
_NAMES = (
    "scan",
    "scan_part",
    "sort_runs_by_score",
    "order_detections",
    "merge_groups",
    "match_groups_status",
    "match_outputs",
    "match_groups_status_into",
    "accumulate_all_uniform",
    "to_input_order",
    "per_image_json",
)


# What ``build_aot`` compiles with beyond the sources (part of the build's hash).
_BUILD_OPTIONS = "release_gil"


@dataclass(frozen=True)
class CocoKernels:
    """The engine's kernels (contracts: their docstrings in the modules named above); ``aot`` = compiled."""

    scan: Callable[..., Any]
    scan_part: Callable[..., Any]
    sort_runs_by_score: Callable[..., Any]
    order_detections: Callable[..., Any]
    merge_groups: Callable[..., Any]
    match_groups_status: Callable[..., Any]
    match_outputs: Callable[..., Any]
    match_groups_status_into: Callable[..., Any]
    accumulate_all_uniform: Callable[..., Any]
    to_input_order: Callable[..., Any]
    per_image_json: Callable[..., Any]
    aot: bool


def aot_module_name() -> str:
    """``_coco_aot_<hash>``: the hash of the kernel sources and of the toolchain that compiles them."""
    h = hashlib.sha256()
    for name in _SOURCES:
        h.update((_HERE / name).read_bytes())
    h.update(f"{platform.python_version()} {np.__version__} {_BUILD_OPTIONS}".encode())
    # numba's version without importing numba (nor importlib.metadata: ~15 ms of start-up).
    spec = importlib.util.find_spec("numba")
    if spec is not None and spec.origin is not None:
        h.update(Path(spec.origin).with_name("_version.py").read_bytes())
    return f"_coco_aot_{h.hexdigest()[:16]}"


def _jit() -> CocoKernels:
    from shared.metrics import coco_accumulate as KA
    from shared.metrics import coco_json_kernels as KJ
    from shared.metrics import coco_kernels as K
    from shared.metrics import coco_report_kernels as KR

    return CocoKernels(
        scan=KJ.scan,
        scan_part=KJ.scan_part,
        sort_runs_by_score=K.sort_runs_by_score,
        order_detections=K.order_detections,
        merge_groups=K.merge_groups,
        match_groups_status=K.match_groups_status,
        match_outputs=K.match_outputs,
        match_groups_status_into=K.match_groups_status_into,
        accumulate_all_uniform=KA.accumulate_all_uniform,
        to_input_order=KA.to_input_order,
        per_image_json=KR.per_image_json,
        aot=False,
    )


def _checked(fn: Callable[..., Any], name: str, spec: list[list[Any] | None]) -> Callable[..., Any]:
    """``fn`` with a check that each array argument has the dtype, rank and layout it was compiled for."""

    def call(*args: Any) -> Any:
        for i, (arg, want) in enumerate(zip(args, spec, strict=True)):
            if want is None:
                continue
            dtype, ndim, contiguous = want
            if (
                not isinstance(arg, np.ndarray)
                or arg.dtype.str != dtype
                or arg.ndim != ndim
                or (contiguous and not arg.flags.c_contiguous)
            ):
                got = (
                    f"{arg.dtype.str} ndim={arg.ndim}" if isinstance(arg, np.ndarray) else type(arg).__name__
                )
                raise TypeError(f"{name}: argument {i} must be {dtype} ndim={ndim}, got {got}")
        return fn(*args)

    return call


def _load_aot() -> CocoKernels | None:
    name = aot_module_name()
    spec_path = _HERE / f"{name}.json"
    if not spec_path.exists():
        return None
    try:
        module = importlib.import_module(f"shared.metrics.{name}")
    except ImportError:
        return None
    specs = json.loads(spec_path.read_text())
    fns = {n: _checked(getattr(module, n), n, specs[n]) for n in _NAMES}
    return CocoKernels(**fns, aot=True)


@functools.cache
def kernels(aot: bool = True) -> CocoKernels:
    """The AOT kernels when built for these sources (and ``aot``), else the numba JIT ones."""
    if aot and not _jit_only:
        loaded = _load_aot()
        if loaded is not None:
            return loaded
    return _jit()


_jit_only = False  # set while _warm_signatures runs: the engine must call the JIT kernels, even if built


@contextlib.contextmanager
def _engine_on_jit() -> Iterator[None]:
    global _jit_only
    kernels.cache_clear()
    _jit_only = True
    try:
        yield
    finally:
        _jit_only = False
        kernels.cache_clear()


def _warm_signatures() -> dict[str, Any]:
    """Run the JIT engine on a small dataset: each kernel's numba signature, as the engine calls it."""
    with _engine_on_jit():
        return _signatures()


def _signatures() -> dict[str, Any]:
    from numba.core import types as numba_types

    from shared.metrics.coco_input import flatten_coco
    from shared.metrics.coco_json import parse_results
    from shared.metrics.coco_report import coco_report_json
    from shared.metrics.coco_result import evaluate_flat, match_flat

    rng = np.random.default_rng(0)
    gt = {
        "images": [{"id": i} for i in range(1, 4)],
        "categories": [{"id": c} for c in (1, 2)],
        "annotations": [
            {"id": j + 1, "image_id": 1 + j % 3, "category_id": 1 + j % 2, "bbox": [1.0, 2.0, 30.0, 40.0]}
            for j in range(6)
        ],
    }
    text = json.dumps(
        [
            {"image_id": 1 + j % 3, "category_id": 1 + j % 2, "bbox": [1, 2, 29.5, 41], "score": float(s)}
            for j, s in enumerate(rng.random(40))
        ]
    ).encode()
    dets = parse_results(text)
    assert dets is not None
    with ThreadPoolExecutor(max_workers=1) as pool:  # scan_part: big files only
        halves = parse_results(text, pool=pool, min_split=0)
    assert halves is not None and np.array_equal(halves.bbox, dets.bbox)
    result = evaluate_flat(flatten_coco(gt, dets))
    coco_report_json(result, per_image=True)
    assert result.matches.det_evaluated.any()  # to_input_order
    with ThreadPoolExecutor(max_workers=1) as pool:  # match_outputs, _into (big datasets only)
        split = match_flat(result.flat, pool=pool, min_split=0)
    assert all(np.array_equal(a, b) for a, b in zip(split, result.raw, strict=True))
    jit = _jit()
    # Called from Python only for datasets too sparse for order_detections' counting sort.
    jit.sort_runs_by_score(np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64), np.zeros(1))
    out = {}
    for n in _NAMES:
        # A kernel that another kernel also calls may hold a second specialisation there, for a literal
        # argument (``match_groups_status`` passes 0 to ``match_groups_status_into``): not Python's.
        sigs = [
            sig
            for sig in getattr(jit, n).nopython_signatures
            if not any(isinstance(a, numba_types.Literal) for a in sig.args)
        ]
        if len(sigs) != 1:
            raise RuntimeError(f"{n}: expected one compiled signature, got {sigs}")
        out[n] = sigs[0]
    return out


def _arg_spec(t: Any) -> list[Any] | None:
    from numba.core import types

    if isinstance(t, types.Array):
        return [np.dtype(str(t.dtype)).str, t.ndim, t.layout == "C"]
    return None


def build_aot(output_dir: Path | None = None) -> Path:
    """Compile the kernels ahead of time (a minute or two); returns the extension module's path.

    Removes older ``_coco_aot_*`` builds from ``output_dir`` (default: this package's folder).
    """
    from numba.pycc import CC

    with _releasing_gil():
        return _build(output_dir, CC)


@contextlib.contextmanager
def _releasing_gil() -> Iterator[None]:
    """Make ``numba.pycc`` compile its entry points like ``@njit(nogil=True)`` (the kernels' own flag).

    ``CC`` builds each export's CPython wrapper with default compiler flags, so the compiled module
    would hold the GIL through every kernel and a thread (``blindspot eval coco`` reads the detections
    while it parses the ground truth) could not overlap it. ``pycc`` has no option for it: its flags
    class is swapped, for the build only, for one with ``release_gil`` on (``test_native`` checks that
    two threads run a kernel at once).
    """
    import numba.pycc.compiler as pycc_compiler

    base = pycc_compiler.Flags

    class _NoGilFlags(base):  # type: ignore[misc,valid-type]  # numba is untyped
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.release_gil = True

    setattr(pycc_compiler, "Flags", _NoGilFlags)  # noqa: B010 - a module attribute, swapped on purpose
    try:
        yield
    finally:
        setattr(pycc_compiler, "Flags", base)  # noqa: B010


def _build(output_dir: Path | None, cc_class: Any) -> Path:
    out_dir = Path(output_dir) if output_dir is not None else _HERE
    name = aot_module_name()
    signatures = _warm_signatures()
    jit = _jit()
    cc = cc_class(name, source_module=sys.modules[__name__])
    cc.output_dir = str(out_dir)
    cc.target_cpu = "host"
    for n in _NAMES:
        cc.export(n, signatures[n])(getattr(jit, n).py_func)
    for old in out_dir.glob("_coco_aot_*"):
        if old.is_dir():
            shutil.rmtree(old)
        else:
            old.unlink()
    cc.compile()
    specs = {n: [_arg_spec(a) for a in signatures[n].args] for n in _NAMES}
    (out_dir / f"{name}.json").write_text(json.dumps(specs, indent=1) + "\n")
    return out_dir / cc.output_file
