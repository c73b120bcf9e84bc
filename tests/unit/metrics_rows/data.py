"""Random rows of boxes for the per-row metric tests (continuous coordinates: no IoU ties)."""

from __future__ import annotations

import numpy as np

from shared.metrics.rows import RowBatch


def random_batch(rng: np.random.Generator, n_rows: int, n_classes: int = 3, crowd: float = 0.0) -> RowBatch:
    gts, preds = [], []
    gid = pid = 0
    for r in range(n_rows):
        n_g = int(rng.integers(0, 6))
        n_p = int(rng.integers(0, 8))
        if r % 11 == 0:
            n_g, n_p = 0, 0
        g_boxes = np.column_stack([rng.uniform(0, 100, (n_g, 2)), rng.uniform(5, 40, (n_g, 2))])
        for b in g_boxes:
            gid += 1
            gts.append((gid, r, int(rng.integers(0, n_classes)), b))
        for _ in range(n_p):
            pid += 1
            if n_g and rng.random() < 0.7:
                b = g_boxes[int(rng.integers(0, n_g))] + rng.normal(0, 3, 4)
                b[2:] = np.abs(b[2:]) + 1
            else:
                b = np.concatenate([rng.uniform(0, 100, 2), rng.uniform(5, 40, 2)])
            preds.append((pid, r, int(rng.integers(0, n_classes)), b, float(rng.random())))

    def col(rows: list[tuple[object, ...]], i: int, dtype: type) -> np.ndarray:
        return np.array([t[i] for t in rows], dtype=dtype)

    return RowBatch(
        row_ids=np.arange(n_rows, dtype=np.int64),
        pred_id=col(preds, 0, np.int64),
        pred_row=col(preds, 1, np.int64),
        pred_cls=col(preds, 2, np.int64),
        pred_box=np.array([t[3] for t in preds]).reshape(-1, 4),
        pred_score=col(preds, 4, np.float64),
        gt_id=col(gts, 0, np.int64),
        gt_row=col(gts, 1, np.int64),
        gt_cls=col(gts, 2, np.int64),
        gt_box=np.array([t[3] for t in gts]).reshape(-1, 4),
        gt_area=np.array([t[3][2] * t[3][3] for t in gts], dtype=np.float64),
        gt_crowd=rng.random(len(gts)) < crowd,
    )
