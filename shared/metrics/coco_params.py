"""COCO evaluation parameters (pycocotools ``Params.setDetParams``) and the summary it reports."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

COCO_IOU_THRESHOLDS: NDArray[np.float64] = np.linspace(0.5, 0.95, 10)
COCO_REC_THRESHOLDS: NDArray[np.float64] = np.linspace(0.0, 1.0, 101)
AREA_RANGES: dict[str, tuple[float, float]] = {
    "all": (0.0, 1e10),
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e10),
}
AREA_NAMES: tuple[str, ...] = ("all", "small", "medium", "large")
COCO_MAX_DETS: tuple[int, ...] = (1, 10, 100)

# Detection status codes of ``coco_kernels.match_groups_status``' status array: matched to an ignored GT,
# unmatched with its area outside the range, or past max-dets (0); true positive (1); false positive (2).
IGNORED, TP, FP = 0, 1, 2

# Outcomes of ``coco_json_kernels.scan_part``: not a plain result list, or not JSON (the caller parses
# with orjson); parsed to the closing bracket and the end; stopped at the split, an object's start; an
# object started past the split (which was inside a string, not an object's start).
SCAN_FAIL, SCAN_DONE, SCAN_AT_SPLIT, SCAN_MISSED_SPLIT = 0, 1, 2, 3
# Bytes a result object and its separator take at least: the shortest object with the four keys,
# {"image_id":0,"category_id":0,"bbox":[0,0,0,0],"score":0}, plus a comma. So a buffer of n bytes holds at
# most n // SCAN_OBJECT_BYTES + 1 objects: the scan's columns are sized by it (rows past the last one are
# never written, so their memory is never touched).
SCAN_OBJECT_BYTES = 58

# (key, is_ap, IoU threshold or None for the 0.50:0.95 mean, area range, max dets): COCOeval.summarize.
SUMMARY: tuple[tuple[str, bool, float | None, str, int], ...] = (
    ("mAP", True, None, "all", 100),
    ("AP50", True, 0.5, "all", 100),
    ("AP75", True, 0.75, "all", 100),
    ("AP_small", True, None, "small", 100),
    ("AP_medium", True, None, "medium", 100),
    ("AP_large", True, None, "large", 100),
    ("AR1", False, None, "all", 1),
    ("AR10", False, None, "all", 10),
    ("AR100", False, None, "all", 100),
    ("AR_small", False, None, "small", 100),
    ("AR_medium", False, None, "medium", 100),
    ("AR_large", False, None, "large", 100),
)
STAT_KEYS: tuple[str, ...] = tuple(s[0] for s in SUMMARY)
