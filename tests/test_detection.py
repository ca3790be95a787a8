"""Error detectors: ROC and thresholds against scikit-learn and brute force;
the MLP and the combiners learn a problem with a known answer."""
import jax
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from sklearn import discriminant_analysis
from sklearn import metrics as skm

from explicable_jax import detection, metrics


def _problem(seed, n=600, frac_wrong=0.2, shift=2.0, dims=6):
  rng = np.random.default_rng(seed)
  y = rng.random(n) < frac_wrong
  x = rng.normal(size=(n, dims)) + shift * y[:, None] * (np.arange(dims) < 2)
  return x.astype(np.float32), y


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.booleans())
def test_roc_curve_matches_sklearn(seed, ties):
  rng = np.random.default_rng(seed)
  t = rng.random(50) < 0.3
  t[:2] = [True, False]
  s = rng.normal(size=50) + t
  if ties:
    s = s.round(1)
  fpr, tpr, thr = detection.roc_curve(s, t)
  f2, t2, th2 = skm.roc_curve(t, s, drop_intermediate=False)
  np.testing.assert_allclose(fpr, f2)
  np.testing.assert_allclose(tpr, t2)
  np.testing.assert_allclose(thr[1:], th2[1:])
  area = np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)  # trapezoid rule
  assert area == pytest.approx(metrics.auroc(s, t))


def test_youden_threshold_is_the_brute_force_best_mean_recall():
  x, y = _problem(0)
  s = x[:, 0] + 0.5 * x[:, 1]
  th = detection.choose_threshold(s, y)
  best = max(detection.recalls(s, y, c)["mean_recall"] for c in np.unique(s))
  assert detection.recalls(s, y, th)["mean_recall"] == pytest.approx(best)
  assert detection.choose_threshold(s, y, method="youden") == th


def test_equal_recall_threshold_is_the_brute_force_closest_pair_of_recalls():
  x, y = _problem(0)
  s = x[:, 0] + 0.5 * x[:, 1]
  th = detection.choose_threshold(s, y, method="equal_recall")
  gap = lambda c: abs(detection.recalls(s, y, c)["right_recall"]
                      - detection.recalls(s, y, c)["wrong_recall"])
  assert gap(th) == pytest.approx(min(gap(c) for c in np.unique(s)))
  assert gap(th) < 0.05  # 600 examples: the two recalls meet within a step


def test_range_normalisation_and_unweighted_loss_options():
  """Wu et al.'s detector input, (x - mean) / (max - min), unweighted BCE: the
  stored statistics are the range, and the options are checked."""
  x, y = _problem(2)
  det = detection.train_detector(jax.random.key(0), x, y, epochs=2, normalize="range",
                                 class_weight=None)
  np.testing.assert_allclose(det.std, x.max(0) - x.min(0) + 1e-8, rtol=1e-6)
  with pytest.raises(ValueError, match="normalize"):
    detection.train_detector(jax.random.key(0), x, y, epochs=1, normalize="minmax")


def test_logistic_regression_combiner_separates_a_linear_problem():
  x, y = _problem(3)
  c = detection.fit_combiner("logreg", x, y)
  assert metrics.auroc(c.scores(x), y) > 0.9


def test_target_recall_threshold_is_the_largest_that_reaches_it():
  x, y = _problem(1)
  s = x[:, 0]
  th = detection.choose_threshold(s, y, method="recall", target_recall=0.9)
  assert detection.recalls(s, y, th)["wrong_recall"] >= 0.9
  higher = np.unique(s)[np.unique(s) > th]
  assert detection.recalls(s, y, higher[0])["wrong_recall"] < 0.9


def test_recalls_by_hand():
  r = detection.recalls([0.1, 0.6, 0.7, 0.2], [0, 1, 0, 1], 0.5)
  assert r == {"right_recall": 0.5, "wrong_recall": 0.5, "mean_recall": 0.5, "accuracy": 0.5}


def test_mlp_detector_learns_a_separable_problem_deterministically():
  x, y = _problem(2, n=800, shift=3.0)
  xt, yt = _problem(3, n=400, shift=3.0)
  det = detection.train_detector(jax.random.key(0), x, y, epochs=15, batch_size=64)
  assert det.history[-1] < det.history[0]
  assert metrics.auroc(det.scores(xt), yt) > 0.95
  compiled = detection._detector_epoch._cache_size()
  again = detection.train_detector(jax.random.key(0), x, y, epochs=15, batch_size=64)
  np.testing.assert_array_equal(det.scores(xt), again.scores(xt))
  # The second call (same shapes and settings) reused the first's compilation.
  assert detection._detector_epoch._cache_size() == compiled


def test_balanced_class_weight_raises_the_recall_of_rare_errors():
  x, y = _problem(4, n=1000, frac_wrong=0.08, shift=1.5)
  plain = detection.train_detector(jax.random.key(1), x, y, epochs=10, class_weight=None)
  bal = detection.train_detector(jax.random.key(1), x, y, epochs=10)
  assert (detection.recalls(bal.scores(x), y, 0.5)["wrong_recall"]
          > detection.recalls(plain.scores(x), y, 0.5)["wrong_recall"])


@pytest.mark.parametrize("kind", detection.COMBINERS)
def test_combiners_separate_two_gaussians(kind):
  x, y = _problem(5, dims=2, shift=2.5)
  xt, yt = _problem(6, dims=2, shift=2.5)
  c = detection.fit_combiner(kind, x, y, key=jax.random.key(0),
                             **({"epochs": 10} if kind == "nn" else {}))
  assert metrics.auroc(c.scores(xt), yt) > 0.9


def test_lda_combiner_is_sklearn_lda():
  # LDA is affine invariant, so standardising the features changes nothing.
  x, y = _problem(7, dims=2)
  ours = detection.fit_combiner("lda", x, y).scores(x)
  ref = discriminant_analysis.LinearDiscriminantAnalysis().fit(x, y).predict_proba(x)[:, 1]
  np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-6)


def test_qda_combiner_survives_a_feature_constant_within_a_class():
  x, y = _problem(8, dims=2)
  x[~y, 0] = 0.0  # e.g. no label change for any right prediction
  s = detection.fit_combiner("qda", x, y).scores(x)
  assert np.all(np.isfinite(s)) and metrics.auroc(s, y) > 0.9


@pytest.mark.parametrize("call, match", [
    (lambda: detection.train_detector(jax.random.key(0), np.full((4, 2), np.nan), [0, 1, 0, 1]),
     "finite"),
    (lambda: detection.train_detector(jax.random.key(0), np.zeros((4, 2)), [0, 0, 0, 0]),
     "both classes"),
    (lambda: detection.train_detector(jax.random.key(0), np.zeros((4, 2)), [0, 1, 0]),
     r"shape \(4,\)"),
    (lambda: detection.train_detector(jax.random.key(0), np.zeros((4, 2)), [0, 1, 0, 1],
                                      dropout=1.0), "dropout must be below 1"),
    (lambda: detection.choose_threshold([0.1, 0.2], [0, 1], method="recall"),
     "target_recall is required"),
    (lambda: detection.choose_threshold([0.1, 0.2], [0, 1], method="f1"), "method"),
    (lambda: detection.fit_combiner("svm", np.zeros((4, 2)), [0, 1, 0, 1]), "kind"),
    (lambda: detection.fit_combiner("nn", np.zeros((4, 2)), [0, 1, 0, 1]), "key is required"),
])
def test_bad_input_is_named(call, match):
  with pytest.raises(ValueError, match=match):
    call()
