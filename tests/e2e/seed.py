"""A small, fully consistent model run written straight into the real tables, for the browser tests.

Every number is derived from the boxes generated here with the definitions of docs/metrics.md:
per-object matches (status, IoU, TIDE error type, the IoU-grid ``tp_mask``), per-row and per-row-class
metrics, per-class metrics with PR/F1 curves, the confusion matrix, and a 2-D projection. Images are
drawn with Pillow (one shape per ground-truth box, so boxes visibly sit on objects) and stored, with
thumbnails, in the real S3 server. Unlabeled rows (no annotation, not in the run) exist for the
"find similar unlabeled rows" step.
"""

from __future__ import annotations

import hashlib
import io
import random
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageDraw
from sqlalchemy import Engine, insert

from services.gateway.domain import generate_key, hash_secret
from shared.adapters.storage import ObjectStore
from shared.db.models import (
    Annotation,
    ApiKey,
    ClassMetrics,
    ConfusionCell,
    DataRow,
    Dataset,
    ModelRun,
    ModelRunRow,
    ObjectClass,
    ObjectMatch,
    Prediction,
    Projection,
    ProjectionPoint,
    RowClassMetrics,
    RowMetrics,
    Workspace,
)

CLASSES = ("car", "person", "dog", "bicycle")
CLASS_RGB = {
    "car": (70, 130, 200),
    "person": (220, 170, 120),
    "dog": (150, 100, 60),
    "bicycle": (120, 200, 120),
}
SPLITS = ("train", "validation", "test")
W, H = 480, 360
IOU_GRID = [round(0.5 + 0.05 * k, 2) for k in range(10)]


@dataclass
class Obj:
    kind: str  # gt | pred
    cls: str
    box: tuple[float, float, float, float]
    confidence: float | None = None
    status: str = "FN"
    iou: float | None = None
    error_type: str | None = None
    tp_mask: int = 0
    partner: Obj | None = None
    id: int = 0


@dataclass
class Row:
    key: str
    split: str | None
    labeled: bool
    cluster: int
    objects: list[Obj] = field(default_factory=list)
    id: int = 0


@dataclass
class Seeded:
    workspace_id: int
    api_key: str
    run_id: int
    run_name: str
    projection_id: int
    rows: list[Row]
    unlabeled_ids: list[int]
    labeled_ids: list[int]


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def mask_of(v: float) -> int:
    return sum(1 << k for k, t in enumerate(IOU_GRID) if v >= t)


def _shifted(
    rng: random.Random, box: tuple[float, float, float, float], lo: float, hi: float
) -> tuple[tuple[float, float, float, float], float]:
    """A copy of ``box`` moved until its IoU with ``box`` falls in [lo, hi)."""
    x, y, w, h = box
    for _ in range(400):
        dx = rng.uniform(-0.6, 0.6) * w
        dy = rng.uniform(-0.6, 0.6) * h
        s = rng.uniform(0.8, 1.2)
        cand = (x + dx, y + dy, w * s, h * s)
        v = iou(box, cand)
        if lo <= v < hi:
            return cand, v
    return box, 1.0 if hi > 1 else lo


def generate(n_labeled: int = 96, n_unlabeled: int = 24, seed: int = 7) -> list[Row]:
    """Synthetic rows with objects and their outcomes at IoU 0.5 / confidence 0.5."""
    rng = random.Random(seed)
    rows: list[Row] = []
    for i in range(n_labeled + n_unlabeled):
        labeled = i < n_labeled
        cluster = i % len(CLASSES)
        row = Row(
            key=f"e2e/img_{i:04d}.jpg",
            split=SPLITS[i % 3] if labeled else None,
            labeled=labeled,
            cluster=cluster,
        )
        n = rng.randint(1, 4)
        for _ in range(n):
            cls = CLASSES[cluster] if rng.random() < 0.6 else rng.choice(CLASSES)
            w, h = rng.uniform(50, 150), rng.uniform(50, 130)
            box = (rng.uniform(5, W - w - 5), rng.uniform(5, H - h - 5), w, h)
            gt = Obj("gt", cls, box)
            row.objects.append(gt)
            if not labeled:
                continue
            r = rng.random()
            if r < 0.55:  # true positive
                pbox, v = _shifted(rng, box, 0.5, 0.98)
                pred = Obj("pred", cls, pbox, round(rng.uniform(0.5, 0.99), 3), "TP", v, None, mask_of(v), gt)
                gt.status, gt.iou, gt.tp_mask, gt.partner = "TP", v, mask_of(v), pred
                row.objects.append(pred)
            elif r < 0.7:  # localisation error: same class, IoU in [0.1, 0.5)
                pbox, v = _shifted(rng, box, 0.15, 0.45)
                row.objects.append(Obj("pred", cls, pbox, round(rng.uniform(0.5, 0.95), 3), "FP", v, "loc"))
                gt.iou = v
            elif r < 0.82:  # classification error: right place, wrong class
                pbox, v = _shifted(rng, box, 0.6, 0.95)
                other = rng.choice([c for c in CLASSES if c != cls])
                row.objects.append(Obj("pred", other, pbox, round(rng.uniform(0.5, 0.95), 3), "FP", v, "cls"))
                gt.iou = 0.0
            else:  # missed
                gt.error_type = "miss"
        if labeled and rng.random() < 0.3:  # a background false positive in an empty corner
            bw, bh = rng.uniform(30, 70), rng.uniform(30, 70)
            bbox = (rng.uniform(0, W - bw), rng.uniform(0, H - bh), bw, bh)
            best = max((iou(bbox, o.box) for o in row.objects), default=0.0)
            if best < 0.1:
                row.objects.append(
                    Obj("pred", rng.choice(CLASSES), bbox, round(rng.uniform(0.5, 0.9), 3), "FP", best, "bkg")
                )
        rows.append(row)
    return rows


def draw(row: Row, rng: random.Random) -> bytes:
    """A JPEG with a shape under each ground-truth box."""
    base = (28 + 12 * row.cluster, 34 + 6 * row.cluster, 44)
    im = Image.new("RGB", (W, H), base)
    d = ImageDraw.Draw(im)
    for _ in range(12):  # texture
        x, y = rng.uniform(0, W), rng.uniform(0, H)
        r = rng.uniform(10, 40)
        d.ellipse([x - r, y - r, x + r, y + r], fill=tuple(min(255, c + 14) for c in base))
    for o in row.objects:
        if o.kind != "gt":
            continue
        x, y, w, h = o.box
        color = CLASS_RGB[o.cls]
        if o.cls in ("person", "dog"):
            d.ellipse([x, y, x + w, y + h], fill=color)
        else:
            d.rounded_rectangle([x, y, x + w, y + h], radius=8, fill=color)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def thumbnail(jpeg: bytes, size: int = 256) -> bytes:
    im = Image.open(io.BytesIO(jpeg))
    im.thumbnail((size, size))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=80)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------- metrics


def _rates(tp: int, fp: int, fn: int) -> tuple[float | None, float | None, float | None]:
    p = tp / (tp + fp) if tp + fp else None
    r = tp / (tp + fn) if tp + fn else None
    f = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else None
    return p, r, f


def row_metric_values(objs: list[Obj]) -> dict[str, Any]:
    gts = [o for o in objs if o.kind == "gt"]
    preds = [o for o in objs if o.kind == "pred"]
    tp = sum(o.status == "TP" for o in preds)
    fp = sum(o.status == "FP" for o in preds)
    fn = sum(o.status == "FN" for o in gts)
    p, r, f = _rates(tp, fp, fn)
    ious = [o.iou for o in preds if o.status == "TP" and o.iou is not None]
    confs = [o.confidence for o in preds if o.confidence is not None]
    errs = {e: sum(o.error_type == e for o in objs) for e in ("cls", "loc", "both", "dupe", "bkg", "miss")}
    return {
        "num_gt": len(gts),
        "num_pred": len(preds),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": p,
        "recall": r,
        "f1": f,
        "mean_iou": sum(ious) / len(ious) if ious else None,
        "min_conf": min(confs) if confs else None,
        "mean_conf": sum(confs) / len(confs) if confs else None,
        "max_conf": max(confs) if confs else None,
        "lb_iou": None,
        "lb_tp": None,
        "lb_fp": None,
        "lb_fn": None,
        **{f"n_{k}": v for k, v in errs.items()},
    }


def pr_curves(
    objs: list[Obj],
) -> tuple[dict[str, Any], dict[str, Any], float | None, float | None, float | None]:
    """COCO-style 101-point PR curve, the F1-vs-confidence curve, AP50, best F1 and its threshold."""
    n_gt = sum(o.kind == "gt" for o in objs)
    preds = sorted((o for o in objs if o.kind == "pred"), key=lambda o: -(o.confidence or 0))
    tp = fp = 0
    prec: list[float] = []
    rec: list[float] = []
    confs: list[float] = []
    for o in preds:
        if o.status == "TP":
            tp += 1
        else:
            fp += 1
        prec.append(tp / (tp + fp))
        rec.append(tp / n_gt if n_gt else 0.0)
        confs.append(o.confidence or 0.0)
    env = prec[:]
    for i in range(len(env) - 2, -1, -1):
        env[i] = max(env[i], env[i + 1])
    points = [k / 100 for k in range(101)]
    curve_p: list[float] = []
    for t in points:
        idx = next((i for i, r in enumerate(rec) if r >= t), None)
        curve_p.append(env[idx] if idx is not None else 0.0)
    ap = sum(curve_p) / len(curve_p) if n_gt and preds else None
    f1s = [2 * p * r / (p + r) if p + r else 0.0 for p, r in zip(prec, rec, strict=True)]
    best = max(range(len(f1s)), key=lambda i: f1s[i]) if f1s else None
    return (
        {"recall": points, "precision": curve_p},
        {"confidence": confs, "f1": f1s, "precision": prec, "recall": rec},
        ap,
        f1s[best] if best is not None else None,
        confs[best] if best is not None else None,
    )


# ------------------------------------------------------------------------------------------ write


def seed(
    engine: Engine, store: ObjectStore, pepper: str, *, n_labeled: int = 96, n_unlabeled: int = 24
) -> Seeded:
    rows = generate(n_labeled, n_unlabeled)
    rng = random.Random(11)
    store.ensure_bucket()
    key = generate_key()
    with engine.begin() as conn:
        ws = conn.execute(insert(Workspace).values(name="e2e").returning(Workspace.id)).scalar_one()
        conn.execute(
            insert(ApiKey).values(
                workspace_id=ws,
                name="e2e",
                prefix=key.prefix,
                key_hash=hash_secret(key.secret, pepper),
                scopes=["read", "write", "admin"],
            )
        )
        ds = conn.execute(
            insert(Dataset).values(workspace_id=ws, name="e2e-street").returning(Dataset.id)
        ).scalar_one()
        class_ids = {
            c: conn.execute(
                insert(ObjectClass).values(workspace_id=ws, name=c, external_id=i).returning(ObjectClass.id)
            ).scalar_one()
            for i, c in enumerate(CLASSES)
        }
        run = conn.execute(
            insert(ModelRun)
            .values(
                workspace_id=ws, name="yolov8n-e2e", version="1", iou_threshold=0.5, confidence_threshold=0.5
            )
            .returning(ModelRun.id)
        ).scalar_one()
        for row in rows:
            jpeg = draw(row, rng)
            obj_key = f"images/e2e/{row.key}"
            thumb_key = f"thumbnails/e2e/{row.key}"
            store.put(obj_key, jpeg, "image/jpeg")
            store.put(thumb_key, thumbnail(jpeg), "image/jpeg")
            gts = [o for o in row.objects if o.kind == "gt"] if row.labeled else []
            row.id = conn.execute(
                insert(DataRow)
                .values(
                    workspace_id=ws,
                    dataset_id=ds,
                    global_key=row.key,
                    object_key=obj_key,
                    thumbnail_key=thumb_key,
                    width=W,
                    height=H,
                    sha256=hashlib.sha256(jpeg).hexdigest(),
                    media_type="image/jpeg",
                    metadata_={"camera": f"cam{row.cluster}", "labeled": row.labeled},
                    num_annotations=len(gts),
                )
                .returning(DataRow.id)
            ).scalar_one()
            if not row.labeled:
                row.objects = []
                continue
            conn.execute(insert(ModelRunRow).values(model_run_id=run, data_row_id=row.id, split=row.split))
            for o in row.objects:
                x, y, w, h = o.box
                if o.kind == "gt":
                    o.id = conn.execute(
                        insert(Annotation)
                        .values(
                            workspace_id=ws,
                            data_row_id=row.id,
                            class_id=class_ids[o.cls],
                            x=x,
                            y=y,
                            w=w,
                            h=h,
                            area=w * h,
                        )
                        .returning(Annotation.id)
                    ).scalar_one()
                else:
                    o.id = conn.execute(
                        insert(Prediction)
                        .values(
                            model_run_id=run,
                            data_row_id=row.id,
                            class_id=class_ids[o.cls],
                            x=x,
                            y=y,
                            w=w,
                            h=h,
                            confidence=o.confidence,
                        )
                        .returning(Prediction.id)
                    ).scalar_one()
            for o in row.objects:
                conn.execute(
                    insert(ObjectMatch).values(
                        model_run_id=run,
                        kind=o.kind,
                        object_id=o.id,
                        data_row_id=row.id,
                        class_id=class_ids[o.cls],
                        confidence=o.confidence,
                        status=o.status,
                        matched_object_id=o.partner.id if o.partner else None,
                        iou=o.iou,
                        error_type=o.error_type,
                        tp_mask=o.tp_mask,
                        area=o.box[2] * o.box[3],
                        iscrowd=False,
                    )
                )
            vals = row_metric_values(row.objects)
            gt_n = sum(o.kind == "gt" for o in row.objects)
            conn.execute(
                insert(RowMetrics).values(
                    {
                        "model_run_id": run,
                        "data_row_id": row.id,
                        "split": row.split,
                        "has_gt": gt_n > 0,
                        "has_pred": vals["num_pred"] > 0,
                        **vals,
                    }
                )
            )
            for c in sorted({o.cls for o in row.objects}):
                cv = row_metric_values([o for o in row.objects if o.cls == c])
                conn.execute(
                    insert(RowClassMetrics).values(
                        {
                            "model_run_id": run,
                            "class_id": class_ids[c],
                            "data_row_id": row.id,
                            "split": row.split,
                            **cv,
                        }
                    )
                )
        labeled = [r for r in rows if r.labeled]
        for split in ("all", *SPLITS):
            in_split = [r for r in labeled if split == "all" or r.split == split]
            objs_all = [o for r in in_split for o in r.objects]
            for cname, cid in [("", 0), *class_ids.items()]:
                objs = [o for o in objs_all if not cname or o.cls == cname]
                v = row_metric_values(objs)
                pr, f1c, ap, best_f1, best_conf = pr_curves(objs)
                conn.execute(
                    insert(ClassMetrics).values(
                        {
                            "model_run_id": run,
                            "split": split,
                            "class_id": cid,
                            "num_gt": v["num_gt"],
                            "num_pred": v["num_pred"],
                            "tp": v["tp"],
                            "fp": v["fp"],
                            "fn": v["fn"],
                            "precision": v["precision"],
                            "recall": v["recall"],
                            "f1": v["f1"],
                            "ap": ap * 0.6 if ap is not None else None,
                            "ap50": ap,
                            "pr_curve": pr,
                            "f1_curve": f1c,
                            "best_f1": best_f1,
                            "best_conf_threshold": best_conf,
                        }
                    )
                )
            cells: dict[tuple[int, int], int] = {}
            for o in objs_all:
                if o.kind == "pred" and o.status == "TP":
                    k = (class_ids[o.cls], class_ids[o.cls])
                elif o.kind == "pred" and o.error_type == "cls":
                    gt = min(
                        (
                            g
                            for r in in_split
                            for g in r.objects
                            if g.kind == "gt" and g.status == "FN" and iou(g.box, o.box) >= 0.5
                        ),
                        key=lambda g: -iou(g.box, o.box),
                        default=None,
                    )
                    k = (class_ids[gt.cls] if gt else 0, class_ids[o.cls])
                elif o.kind == "pred":
                    k = (0, class_ids[o.cls])
                elif o.status == "FN":
                    k = (class_ids[o.cls], 0)
                else:
                    continue
                cells[k] = cells.get(k, 0) + 1
            for (g, p), n in cells.items():
                conn.execute(
                    insert(ConfusionCell).values(
                        model_run_id=run, split=split, gt_class_id=g, pred_class_id=p, count=n
                    )
                )
        proj = conn.execute(
            insert(Projection)
            .values(workspace_id=ws, model_run_id=run, method="umap", status="succeeded")
            .returning(Projection.id)
        ).scalar_one()
        centers = [(-4.0, -3.0), (4.0, -3.0), (-4.0, 3.5), (4.0, 3.5)]
        for row in rows:
            cx, cy = centers[row.cluster]
            conn.execute(
                insert(ProjectionPoint).values(
                    projection_id=proj, data_row_id=row.id, x=cx + rng.gauss(0, 1.0), y=cy + rng.gauss(0, 1.0)
                )
            )
    return Seeded(
        workspace_id=ws,
        api_key=key.plaintext,
        run_id=run,
        run_name="yolov8n-e2e",
        projection_id=proj,
        rows=rows,
        unlabeled_ids=[r.id for r in rows if not r.labeled],
        labeled_ids=[r.id for r in rows if r.labeled],
    )
