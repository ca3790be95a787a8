"""Olmo, Sengupta and Kambhampati's Lemmas 1 and 2, as the paper states them,
checked on the library's weighted cross-entropy over random probability vectors.

The paper (../shared/papers/olmo_explicable_misclassification_paper.md, section 4):

* Lemma 1: "A two-way swap between the probabilities assigned to an
  inexplicable vs. an explicable class penalizes the inexplicable
  misclassification more than the explicable one when using weighted CCEs";
* Lemma 2: "an increase epsilon in the confidence of a misclassification to
  class b is penalized if the probability epsilon is assigned to class(es) a
  that is(are) tau-times more explicable than b where,
  tau = log((p_a + epsilon)/p_a) / log((p_b + epsilon)/p_b)", with "p_a < p_b
  since the classifier misclassifies the image to class b".

Lemma 1 holds. Lemma 2's condition W_ca > tau W_cb is sufficient under p_a <
p_b, but it is not the threshold: the loss difference is
W_ca log((p_a + eps)/p_a) - W_cb log((p_b + eps)/p_b), so the increase is
penalised exactly when W_ca > W_cb / tau (the proof's last step inverts the
ratio); "a has to be a tau-times more explicable class" is false.
"""
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from explicable_jax import losses

# Lemma losses in float64 terms are compared with float32 library values.
RTOL, ATOL = 2e-3, 2e-5


def _loss(p, c, w_row, target="l1"):
  """The library's weighted cross-entropy of true class ``c`` at probabilities
  ``p`` (logits ``log p``), weight row ``w_row`` (the other rows: identity)."""
  k = len(p)
  w = np.eye(k)
  w[c] = w_row
  return float(losses.weighted_cross_entropy(jnp.log(jnp.asarray([p], jnp.float32)),
                                             jnp.asarray([c]), w, target=target)[0])


def _target(w_row, target):
  w = np.asarray(w_row, np.float64)
  return w / w.sum() if target == "l1" else np.exp(w) / np.exp(w).sum()


# Six classes: one shape, so the library loss compiles once per target form.
probabilities = st.lists(st.floats(0.02, 1.0), min_size=6, max_size=6)
weights = st.lists(st.floats(0.0, 1.0), min_size=6, max_size=6)


@settings(max_examples=60, deadline=None)
@given(probabilities, weights, st.sampled_from(["l1", "softmax"]), st.data())
def test_lemma1_a_swap_towards_the_inexplicable_class_costs_more(raw_p, raw_w, target, data):
  p = np.asarray(raw_p) / np.sum(raw_p)
  k = len(p)
  c, e, i = data.draw(st.permutations(range(k)))[:3]
  w = np.asarray(raw_w[:k])
  w[c] = 1.0
  # The lemma's premises: e is the more explicable class (W_ce > W_ci) and the
  # model puts the higher probability h on it (h > l).
  if w[e] < w[i]:
    e, i = i, e
  if p[e] < p[i]:
    p[[e, i]] = p[[i, e]]
  h, l = p[e], p[i]
  assume(w[e] - w[i] > 0.02 and h / l > 1.05)
  swapped = p.copy()
  swapped[[e, i]] = l, h
  t = _target(w, target)
  gap = _loss(swapped, c, w, target) - _loss(p, c, w, target)
  # The paper's (2): L_i - L_e = (log h - log l)(W_ce - W_ci) > 0, with its
  # W the target row t(W_c) of the loss.
  assert gap == pytest.approx((np.log(h) - np.log(l)) * (t[e] - t[i]), rel=RTOL, abs=ATOL)
  assert gap > 0


def _lemma2_states(r, a, b, eps):
  """(low, high) confidence of class b: high = ``r``; low moves ``eps`` of
  b's probability to a. Returns the paper's p_a (a's in the high state) and
  p_b (b's in the low state) too."""
  low = r.copy()
  low[b] -= eps
  low[a] += eps
  return low, r, r[a], low[b]


def _tau(p_a, p_b, eps):
  """The paper's tau, as stated."""
  return np.log((p_a + eps) / p_a) / np.log((p_b + eps) / p_b)


@settings(max_examples=60, deadline=None)
@given(probabilities, st.floats(0.05, 0.9), st.floats(0.0, 1.0), st.floats(0.01, 2.0),
       st.data())
def test_lemma2_stated_condition_is_sufficient_when_pa_below_pb(raw_p, eps_share, w_cb, margin,
                                                                data):
  r = np.asarray(raw_p) / np.sum(raw_p)
  k = len(r)
  c, a, b = data.draw(st.permutations(range(k)))[:3]
  if r[a] > r[b]:
    r[[a, b]] = r[[b, a]]
  eps = eps_share * (r[b] - r[a])  # keeps the paper's p_a < p_b
  low, high, p_a, p_b = _lemma2_states(r, a, b, eps)
  assume(p_a < p_b and eps > 1e-3)
  tau = _tau(p_a, p_b, eps)
  assert tau > 1  # "the numerator has to be greater than the denominator"
  w = np.zeros(k)
  w[c], w[b] = 1.0, w_cb
  w[a] = tau * w_cb + margin * 0.05  # the lemma's premise: W_ca > tau W_cb
  gap = _loss(high, c, w) - _loss(low, c, w)
  assert gap > 0


@settings(max_examples=60, deadline=None)
@given(probabilities, st.floats(0.01, 0.9), weights, st.data())
def test_lemma2_exact_threshold_is_one_over_tau(raw_p, eps_share, raw_w, data):
  """L_h - L_l = W_ca log((p_a + eps)/p_a) - W_cb log((p_b + eps)/p_b) (the
  proof's own difference), so the increase is penalised iff W_ca > W_cb / tau,
  whatever the order of p_a and p_b."""
  r = np.asarray(raw_p) / np.sum(raw_p)
  k = len(r)
  c, a, b = data.draw(st.permutations(range(k)))[:3]
  eps = eps_share * r[b]
  low, high, p_a, p_b = _lemma2_states(r, a, b, eps)
  w = np.asarray(raw_w[:k])
  w[c] = 1.0
  t = w / w.sum()
  gap = _loss(high, c, w) - _loss(low, c, w)
  closed = t[a] * np.log((p_a + eps) / p_a) - t[b] * np.log((p_b + eps) / p_b)
  assert gap == pytest.approx(closed, rel=RTOL, abs=ATOL)
  if abs(closed) > 1e-3:
    assert (gap > 0) == (w[a] > w[b] / _tau(p_a, p_b, eps))


def test_lemma2_stated_tau_is_not_the_threshold():
  """p_a = 0.1, p_b = 0.5, eps = 0.1: the paper's tau is log 2 / log 1.2 =
  3.80. With W_cb = 1 and W_ca = 0.5, a is not tau times more explicable
  (0.5 < 3.80), yet the increase of b's confidence is penalised: the
  threshold is W_cb / tau = 0.263."""
  p_a, p_b, eps = 0.1, 0.5, 0.1
  high = np.array([0.3, p_a, p_b + eps])  # classes c, a, b
  low = np.array([0.3, p_a + eps, p_b])
  tau = _tau(p_a, p_b, eps)
  assert tau == pytest.approx(np.log(2) / np.log(1.2))
  w = np.array([1.0, 0.5, 1.0])
  assert w[1] < tau * w[2] and w[1] > w[2] / tau
  assert _loss(high, 0, w) - _loss(low, 0, w) == pytest.approx(
      (0.5 * np.log(2) - np.log(1.2)) / w.sum(), rel=RTOL)
  assert _loss(high, 0, w) > _loss(low, 0, w)


def test_lemma2_stated_condition_fails_without_pa_below_pb():
  """The paper's premise p_a < p_b is needed: with p_a = 0.5 > p_b = 0.1 and
  eps = 0.1, tau = 0.263, W_ca = 0.5 > tau W_cb, yet L_h < L_l."""
  p_a, p_b, eps = 0.5, 0.1, 0.1
  high = np.array([0.3, p_a, p_b + eps])  # classes c, a, b
  low = np.array([0.3, p_a + eps, p_b])
  w = np.array([1.0, 0.5, 1.0])
  tau = _tau(p_a, p_b, eps)
  assert w[1] > tau * w[2]
  assert _loss(high, 0, w) < _loss(low, 0, w)
