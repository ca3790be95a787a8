"""Error scores (detection.scores) against hand computations, and the
error-detection metrics against scikit-learn and brute force."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from sklearn import metrics as skm

from explicable_jax import metrics
from explicable_jax.detection import scores as S

# Two examples: a confident one and a split one, logits chosen so that the
# softmax is simple: p = (0.5, 0.25, 0.25) and (1/3, 1/3, 1/3).
LOGITS = np.log(np.array([[0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3]], np.float32))


def test_msp_entropy_margin_by_hand():
  np.testing.assert_allclose(S.msp(LOGITS), [0.5, 2 / 3], rtol=1e-6)
  h0 = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
  np.testing.assert_allclose(S.entropy(LOGITS), [h0, math.log(3)], rtol=1e-6)
  np.testing.assert_allclose(S.margin(LOGITS), [-0.25, 0.0], atol=1e-6)


def test_doctor_by_hand():
  g0, g1 = 0.25 + 2 * 0.0625, 1 / 3
  np.testing.assert_allclose(S.doctor_alpha(LOGITS), [(1 - g0) / g0, (1 - g1) / g1],
                             rtol=1e-5)
  np.testing.assert_allclose(S.doctor_beta(LOGITS), [0.5 / 0.5, (2 / 3) / (1 / 3)],
                             rtol=1e-5)


def test_energy_by_hand_and_temperature():
  z = np.array([[2.0, 0.0], [0.0, 0.0]], np.float32)
  np.testing.assert_allclose(S.energy(z), [-math.log(math.exp(2) + 1), -math.log(2)],
                             rtol=1e-6)
  np.testing.assert_allclose(S.energy(z, temperature=2.0),
                             [-2 * math.log(math.exp(1) + 1), -2 * math.log(2)], rtol=1e-6)
  # Temperature scaling divides the logits: T = 2 on z equals T = 1 on z / 2.
  np.testing.assert_allclose(S.msp(z, temperature=2.0), S.msp(z / 2), rtol=1e-6)


def test_every_score_is_higher_for_the_less_confident_example():
  z = np.array([[3.0, 0.0, 0.0], [0.0, 0.0, 0.0]], np.float32)
  for name, fn in S.SCORE_FUNCTIONS.items():
    s = np.asarray(fn(z))
    assert s[1] > s[0], name


def test_doctor_beta_orders_like_msp_and_alpha_need_not():
  z = np.random.default_rng(0).normal(size=(200, 5)).astype(np.float32) * 3
  assert np.all(np.argsort(S.doctor_beta(z)) == np.argsort(S.msp(z)))
  # D_alpha depends on the whole distribution, not only its maximum:
  # p = (0.5, 0.5, 0) and (0.5, 0.25, 0.25) share the MSP but not D_alpha.
  a = np.log(np.array([[0.5, 0.5, 1e-30], [0.5, 0.25, 0.25]], np.float32))
  msp, alpha = S.msp(a), S.doctor_alpha(a)
  assert msp[0] == pytest.approx(msp[1])
  assert alpha[0] < alpha[1]


def test_entropy_of_a_one_hot_softmax_is_zero_not_nan():
  z = np.array([[0.0, -1e30, -1e30]], np.float32)
  assert float(S.entropy(z)[0]) == pytest.approx(0.0, abs=1e-6)


def test_mahalanobis_by_hand():
  """Two classes in 2-D with a known shared covariance: the score is the
  squared distance to the nearest mean under the inverse covariance."""
  rng = np.random.default_rng(0)
  cov = np.array([[2.0, 0.5], [0.5, 1.0]])
  means = np.array([[0.0, 0.0], [5.0, 5.0]])
  y = np.repeat([0, 1], 20000)
  f = means[y] + rng.multivariate_normal([0, 0], cov, size=len(y))
  fit = S.fit_mahalanobis(f, y, 2, ridge=0.0)
  np.testing.assert_allclose(fit.means, means, atol=0.05)
  np.testing.assert_allclose(np.linalg.inv(fit.precision), cov, atol=0.05)
  q = np.array([[1.0, 0.0], [5.0, 4.0]])
  p = np.linalg.inv(cov)
  want = [q[0] @ p @ q[0], (q[1] - means[1]) @ p @ (q[1] - means[1])]
  np.testing.assert_allclose(S.mahalanobis(fit, q), want, rtol=0.05)


def test_mahalanobis_rejects_bad_input():
  with pytest.raises(ValueError, match="classes \\[2\\]"):
    S.fit_mahalanobis(np.zeros((4, 2)), np.array([0, 1, 0, 1]), 3)
  fit = S.fit_mahalanobis(np.eye(4)[:, :2] + 0.1, np.array([0, 1, 0, 1]), 2)
  with pytest.raises(ValueError, match="features must be \\(N, 2\\)"):
    S.mahalanobis(fit, np.zeros((3, 5)))


def test_scores_reject_bad_logits_and_temperature():
  with pytest.raises(ValueError, match="logits must be class scores of shape \\(N, C\\)"):
    S.msp(np.zeros(3))
  with pytest.raises(ValueError, match="temperature"):
    S.energy(LOGITS, temperature=0.0)
  with pytest.raises(ValueError, match="names"):
    S.logit_scores(LOGITS, names=("msp", "odin"))


def test_scores_jit_to_the_eager_values():
  z = jnp.asarray(LOGITS)
  for name, fn in S.SCORE_FUNCTIONS.items():
    if name in S.LOGIT_SCORES:
      np.testing.assert_allclose(jax.jit(fn)(z), fn(z), rtol=1e-6, err_msg=name)


# ---------------------------------------------------------------------------
# Metrics.

def _case(seed, n, ties):
  rng = np.random.default_rng(seed)
  wrong = rng.random(n) < 0.3
  wrong[:2] = [True, False]
  s = rng.normal(size=n) + wrong
  if ties:
    s = np.round(s, 1)
  return s, wrong


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(5, 60), st.booleans())
def test_aupr_is_sklearns_average_precision(seed, n, ties):
  s, w = _case(seed, n, ties)
  assert metrics.aupr(s, w) == pytest.approx(skm.average_precision_score(w, s))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(5, 60), st.booleans())
def test_fpr_at_95_tpr_matches_sklearns_roc_curve(seed, n, ties):
  s, w = _case(seed, n, ties)
  fpr, tpr, _ = skm.roc_curve(w, s, drop_intermediate=False)
  assert metrics.fpr_at_tpr(s, w) == pytest.approx(fpr[np.argmax(tpr >= 0.95)])


def _risks_by_brute_force(s, w):
  """Mean selective risk over every order of the tied scores (all
  permutations, small N)."""
  import itertools
  n = len(s)
  orders = []
  for perm in itertools.permutations(range(n)):
    if all(s[perm[i]] <= s[perm[i + 1]] for i in range(n - 1)):
      orders.append(perm)
  risks = np.array([[w[list(p[:k])].mean() for k in range(1, n + 1)] for p in orders])
  return risks.mean(0)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 7))
def test_risk_coverage_is_the_tie_averaged_brute_force(seed, n):
  rng = np.random.default_rng(seed)
  s = rng.integers(0, 3, n).astype(float)   # many ties
  w = rng.random(n) < 0.5
  cov, risk = metrics.risk_coverage_curve(s, w)
  np.testing.assert_allclose(cov, np.arange(1, n + 1) / n)
  np.testing.assert_allclose(risk, _risks_by_brute_force(s, w), atol=1e-12)
  assert metrics.aurc(s, w) == pytest.approx(_risks_by_brute_force(s, w).mean())


def test_aurc_and_e_aurc_by_hand():
  # Error scores 0.1 < 0.2 < 0.3 < 0.4 with wrong = F, T, F, T: accepting in that
  # order gives risks 0, 1/2, 1/3, 1/2.
  s, w = [0.1, 0.2, 0.3, 0.4], [False, True, False, True]
  assert metrics.aurc(s, w) == pytest.approx((0 + 1 / 2 + 1 / 3 + 1 / 2) / 4)
  # The perfect order F, F, T, T: risks 0, 0, 1/3, 1/2.
  assert metrics.e_aurc(s, w) == pytest.approx((1 / 2 + 1 / 3 + 1 / 2) / 4 - (1 / 3 + 1 / 2) / 4)
  assert metrics.e_aurc([0.1, 0.2, 0.3, 0.4], [False, False, True, True]) == pytest.approx(0)
  assert metrics.selective_accuracy(s, w, 0.5) == pytest.approx(0.5)
  assert metrics.selective_accuracy(s, w, 0.25) == pytest.approx(1.0)


def test_optimal_aurc_approaches_geifmans_closed_form():
  r, n = 0.2, 100_000
  w = np.arange(n) < r * n
  best = metrics.aurc(w.astype(float), w)
  assert best == pytest.approx(r + (1 - r) * math.log(1 - r), rel=1e-3)


def test_detection_metrics_reject_bad_input():
  with pytest.raises(ValueError, match="is_positive needs both classes"):
    metrics.aupr([0.1, 0.2], [True, True])
  with pytest.raises(ValueError, match="tpr"):
    metrics.fpr_at_tpr([0.1, 0.2], [True, False], tpr=1.5)
  with pytest.raises(ValueError, match="coverage"):
    metrics.selective_accuracy([0.1, 0.2], [True, False], -0.1)
  with pytest.raises(ValueError, match="finite"):
    metrics.aurc([0.1, np.nan], [True, False])
