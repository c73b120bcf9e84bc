"""All tables, one file each. Importing this package registers them on ``Base.metadata``."""

from shared.db.models.annotation import Annotation
from shared.db.models.api_key import ApiKey
from shared.db.models.class_metrics import ClassMetrics, ConfusionCell
from shared.db.models.data_row import DataRow
from shared.db.models.dataset import Dataset
from shared.db.models.job import Job
from shared.db.models.labeling import Batch, BatchRow, LabelingProject
from shared.db.models.match_digest import MatchDigest
from shared.db.models.model_run import ModelRun, ModelRunRow
from shared.db.models.object_class import ObjectClass
from shared.db.models.object_match import ObjectMatch
from shared.db.models.prediction import Prediction
from shared.db.models.projection import Projection, ProjectionPoint
from shared.db.models.row_metrics import RowClassMetrics, RowMetrics
from shared.db.models.slice import Slice, SliceMember
from shared.db.models.workspace import Workspace

__all__ = [
    "Annotation",
    "ApiKey",
    "Batch",
    "BatchRow",
    "ClassMetrics",
    "ConfusionCell",
    "DataRow",
    "Dataset",
    "Job",
    "LabelingProject",
    "MatchDigest",
    "ModelRun",
    "ModelRunRow",
    "ObjectClass",
    "ObjectMatch",
    "Prediction",
    "Projection",
    "ProjectionPoint",
    "RowClassMetrics",
    "RowMetrics",
    "Slice",
    "SliceMember",
    "Workspace",
]
