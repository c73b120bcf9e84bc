"""Value sets stored as short text with CHECK constraints (readable in SQL, cheap to extend)."""

from __future__ import annotations

from enum import StrEnum


class Split(StrEnum):
    train = "train"
    validation = "validation"
    test = "test"
    unassigned = "unassigned"


class ObjectKind(StrEnum):
    gt = "gt"
    pred = "pred"


class MatchStatus(StrEnum):
    TP = "TP"
    FP = "FP"
    FN = "FN"


class ErrorType(StrEnum):
    """TIDE error types (Bolya et al. 2020): only FPs and FNs carry one."""

    cls = "cls"
    loc = "loc"
    both = "both"
    dupe = "dupe"
    bkg = "bkg"
    miss = "miss"


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


class ApiScope(StrEnum):
    read = "read"
    write = "write"
    admin = "admin"


def check_in(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"
