"""Metrics against hand counts, scikit-learn and the losses they average."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from sklearn import metrics as skm

from explicable_jax import losses, metrics


def test_top1_accuracy_counts_argmax_hits():
  logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 5.0], [1.0, 0.0, 0.0]])
  assert metrics.top1_accuracy(logits, np.array([0, 1, 0, 0])) == pytest.approx(0.75)


@pytest.mark.parametrize("normalize", [None, "true", "pred", "all"])
def test_confusion_matrix_matches_sklearn(normalize):
  rng = np.random.default_rng(0)
  y = rng.integers(0, 5, 200)
  p = np.where(rng.random(200) < 0.6, y, rng.integers(0, 5, 200))
  ours = metrics.confusion_matrix(y, p, 5, normalize=normalize)
  theirs = skm.confusion_matrix(y, p, labels=range(5), normalize=normalize)
  np.testing.assert_allclose(ours, theirs, atol=1e-12)


def test_confusion_matrix_empty_class_row_is_zero_not_nan():
  c = metrics.confusion_matrix(np.array([0, 0, 2]), np.array([0, 2, 2]), 3,
                               normalize="true")
  np.testing.assert_array_equal(c[1], 0.0)
  np.testing.assert_allclose(c[0], [0.5, 0.0, 0.5])


def test_explicability_losses_are_the_mean_weighted_cross_entropy():
  rng = np.random.default_rng(1)
  z = rng.normal(size=(30, 4)).astype(np.float32)
  y = rng.integers(0, 4, 30)
  w = rng.random((4, 4)) + np.eye(4)
  got = metrics.explicability_losses(z, y, {"A": w, "I": np.eye(4)}, target="l1")
  want = float(np.mean(losses.weighted_cross_entropy(z, y, w, target="l1")))
  assert got["A"] == pytest.approx(want, rel=1e-6)
  # W = I with L1 targets is plain cross-entropy, computed here by hand.
  logp = z - np.log(np.exp(z).sum(1, keepdims=True))
  assert got["I"] == pytest.approx(-logp[np.arange(30), y].mean(), rel=1e-5)


def test_explicability_loss_table_is_models_by_matrices():
  rng = np.random.default_rng(2)
  y = rng.integers(0, 3, 10)
  zs = {"a": rng.normal(size=(10, 3)), "b": rng.normal(size=(10, 3))}
  mats = {"X": np.ones((3, 3)), "Y": np.eye(3) + 0.5}
  table = metrics.explicability_loss_table(zs, y, mats)
  assert set(table) == {"a", "b"} and all(set(r) == {"X", "Y"} for r in table.values())
  # Softmax targets of an all-ones row are uniform: the loss is the mean -log p.
  za = zs["a"]
  logp = za - np.log(np.exp(za).sum(1, keepdims=True))
  assert table["a"]["X"] == pytest.approx(-logp.mean(), rel=1e-5)


def test_hard_soft_scores_hand_example():
  # Three classes; M rewards confusing 0 with 1 over 0 with 2.
  m = np.array([[1.0, 0.6, 0.1], [0.6, 1.0, 0.2], [0.1, 0.2, 1.0]])
  y = np.array([0, 0, 0, 1, 2])
  preds = {
      "a": np.array([1, 2, 1, 0, 2]),   # input 4 right -> not common
      "b": np.array([2, 1, 1, 2, 0]),
      "c": np.array([2, 2, 1, 0, 1]),
  }
  s = metrics.hard_soft_scores(preds, y, m)
  # Common mistakes: inputs 0..3. Winners: 0 -> a; 1 -> b; 2 -> a,b,c tie; 3 -> a,c tie.
  assert s["num_common_mistakes"] == 4
  assert s["hard"] == {"a": 1, "b": 1, "c": 0}
  assert s["soft"]["a"] == pytest.approx(1 + 1 / 3 + 1 / 2)
  assert s["soft"]["b"] == pytest.approx(1 + 1 / 3)
  assert s["soft"]["c"] == pytest.approx(1 / 3 + 1 / 2)
  assert sum(s["soft"].values()) == pytest.approx(4)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000))
def test_soft_scores_sum_to_common_mistakes_and_bound_hard(seed):
  rng = np.random.default_rng(seed)
  c, n = 4, 40
  y = rng.integers(0, c, n)
  preds = {k: rng.integers(0, c, n) for k in "abc"}
  m = rng.random((c, c)).round(1) + 0.01  # rounding makes ties common
  s = metrics.hard_soft_scores(preds, y, m)
  assert sum(s["soft"].values()) == pytest.approx(s["num_common_mistakes"])
  assert sum(s["hard"].values()) <= s["num_common_mistakes"]
  for k in "abc":
    assert s["hard"][k] <= s["soft"][k] + 1e-9


def test_mean_mistake_similarity_ignores_correct_predictions():
  s = np.array([[1.0, 0.5], [0.25, 1.0]])
  got = metrics.mean_mistake_similarity(np.array([0, 1, 0, 1]), np.array([1, 0, 0, 1]), s)
  assert got == pytest.approx((0.5 + 0.25) / 2)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 60), st.booleans())
def test_auroc_matches_sklearn(seed, n, coarse):
  rng = np.random.default_rng(seed)
  t = rng.random(n) < 0.4
  t[0], t[1] = True, False
  s = rng.normal(size=n) + t
  if coarse:
    s = s.round()  # many ties
  assert metrics.auroc(s, t) == pytest.approx(skm.roc_auc_score(t, s), abs=1e-12)


def test_auroc_closed_forms():
  assert metrics.auroc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
  assert metrics.auroc([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == 0.0
  assert metrics.auroc([0.5, 0.5, 0.5], [1, 0, 0]) == 0.5


def test_roc_with_ties_gives_the_mann_whitney_auroc():
  # Positives 0.4, 0.4, 0.8; negatives 0.1, 0.4. Of the 6 (positive, negative)
  # pairs, 3 are ordered (against 0.1), 2 tie (0.4 vs 0.4) and 0.8 beats 0.4:
  # U = 4 + 2 / 2 = 5, AUROC = 5 / 6.
  s, t = [0.1, 0.4, 0.4, 0.4, 0.8], [0, 1, 0, 1, 1]
  fpr, tpr, thr = metrics.roc_curve(s, t)
  np.testing.assert_array_equal(thr, [np.inf, 0.8, 0.4, 0.1])
  np.testing.assert_allclose(tpr, [0, 1 / 3, 1, 1])
  np.testing.assert_allclose(fpr, [0, 0, 0.5, 1])  # the tie block is one diagonal step
  area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
  assert area == pytest.approx(5 / 6, abs=1e-12)
  assert metrics.auroc(s, t) == pytest.approx(5 / 6, abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 40))
def test_roc_area_is_the_pairwise_mann_whitney_statistic(seed, n):
  rng = np.random.default_rng(seed)
  t = rng.random(n) < 0.5
  t[0], t[1] = True, False
  s = rng.integers(0, 4, n).astype(float)  # many ties
  fpr, tpr, _ = metrics.roc_curve(s, t)
  area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
  pos, neg = s[t][:, None], s[~t][None, :]
  u = np.mean((pos > neg) + 0.5 * (pos == neg))
  assert area == pytest.approx(u, abs=1e-12)
  assert metrics.auroc(s, t) == pytest.approx(u, abs=1e-12)


def test_threshold_rules_share_one_roc_point():
  s, t = [0.1, 0.4, 0.35, 0.8, 0.6], [0, 0, 1, 1, 0]
  # TPR reaches 1 at threshold 0.35, where 2 of the 3 negatives are flagged.
  assert metrics.roc_point_at_tpr(s, t, 0.95) == (pytest.approx(2 / 3), 1.0, 0.35)
  assert metrics.fpr_at_tpr(s, t, 0.95) == pytest.approx(2 / 3)
  assert metrics.roc_point_at_tpr(s, t, 0.0)[2] == 0.8  # never the +inf start
  assert metrics.coverage_threshold([0.3, 0.1, 0.9, 0.2], 0.5) == 0.2
  assert metrics.coverage_threshold([0.3, 0.1, 0.9, 0.2], 0.51) == 0.3  # ceil(2.04) = 3


@pytest.mark.parametrize("call, match", [
    (lambda: metrics.top1_accuracy(np.zeros((3, 2)), np.array([0, 1])), "logits has 3, labels has 2"),
    (lambda: metrics.top1_accuracy(np.array([[np.nan, 0.0]]), np.array([0])), "finite"),
    (lambda: metrics.top1_accuracy(np.zeros((2, 2)), np.array([0, 2])), r"\[0, 2\)"),
    (lambda: metrics.confusion_matrix([0, 1], [0], 2), "labels has 2, preds has 1"),
    (lambda: metrics.confusion_matrix([0, 1], [0, 1], 2, normalize="row"), "normalize"),
    (lambda: metrics.explicability_losses(np.zeros((2, 3)), [0, 1], {"W": np.eye(2)}),
     r"matrices\['W'\] must be 3x3"),
    (lambda: metrics.explicability_losses(np.zeros((2, 2)), [0, 1], {}), "at least one"),
    (lambda: metrics.hard_soft_scores({"a": [0, 1], "b": [1, 0]}, [0, 1], -np.eye(2)),
     "non-negative"),
    (lambda: metrics.hard_soft_scores({"a": [0, 1, 1], "b": [1, 0]}, [0, 1], np.eye(2)),
     r"preds_by_model\['a'\] must match"),
    (lambda: metrics.mean_mistake_similarity([0, 1], [0, 1], np.eye(2)), "no mistakes"),
    (lambda: metrics.hard_soft_scores({"a": [1, 0]}, [0, 1], np.eye(2)),
     r"preds_by_model must hold at least 2 models"),
    (lambda: metrics.auroc([0.1, 0.2], [1, 1]), "both classes"),
    (lambda: metrics.auroc([0.1, np.nan], [1, 0]), "finite"),
    (lambda: metrics.auroc([0.1, 0.2], [1, 2]), "is_positive must be boolean or hold only 0 and 1"),
])
def test_bad_input_is_named(call, match):
  with pytest.raises(ValueError, match=match):
    call()
