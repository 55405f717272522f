"""ssc_core.evaluation: official SSC metrics, dataset-level evaluation (ssc-eval) and prediction writers.

- ``metrics``: SSCMetrics (SemanticKITTI / KITTI-360 arithmetic of evaluate_completion.py), NYUMetrics.
- ``official``: evaluate a dataset folder + prediction folder (evaluate, evaluate_semantic_kitti, ...).
- ``writers``: write predictions in the official layout; build and validate the CodaLab submission zip.
"""

from ssc_core.evaluation.metrics import NYUMetrics, SSCMetrics, confusion_matrix, scores_from_confusion

__all__ = ["NYUMetrics", "SSCMetrics", "confusion_matrix", "scores_from_confusion"]
