"""Detecting wrong predictions.

* :mod:`~explicable_jax.detection.detector`: Wu, Michel and Briot's
  conductance error detector, thresholds, ROC curves, and the "unified"
  combiners of several scores (MLP, random forest, LDA, QDA, logistic
  regression).
* :mod:`~explicable_jax.detection.scores`: the baselines every detector is
  set against, computed from the model's own outputs: maximum softmax
  probability, entropy, margin, DOCTOR, energy, and a feature-space
  Mahalanobis score.

The label change rate over model mutants lives in
:mod:`explicable_jax.mutation`; the metrics (AUROC, AUPR, FPR at 95% TPR,
AURC, E-AURC) in :mod:`explicable_jax.metrics`;
:mod:`~explicable_jax.detection.evaluation` tables many scores side by side
against a baseline.
"""
from explicable_jax.detection import evaluation, scores
from explicable_jax.detection.detector import (COMBINERS, THRESHOLD_METHODS, Combiner,
                                               Detector, _detector_epoch as _detector_epoch,
                                               choose_threshold,
                                               detector_scores, evaluate_scores,
                                               fit_combiner, init_mlp, mlp_logit, recalls,
                                               roc_curve, train_detector)
from explicable_jax.detection.evaluation import compare_to_baseline, score_row, score_table

__all__ = [
    "evaluation", "scores", "compare_to_baseline", "score_row", "score_table", "COMBINERS",
    "THRESHOLD_METHODS", "Combiner", "Detector", "choose_threshold",
    "detector_scores", "evaluate_scores", "fit_combiner", "init_mlp", "mlp_logit",
    "recalls", "roc_curve", "train_detector",
]
