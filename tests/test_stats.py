"""Paired statistics (explicable_jax.stats) against references and known answers."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats as scipy_stats

from explicable_jax import metrics, stats


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=200))
def test_mcnemar_exact_matches_scipy_binomtest(pairs):
  a, b = (np.array(v) for v in zip(*pairs))
  out = stats.mcnemar_exact(a, b)
  assert out["only_a"] == int(np.sum(a & ~b)) and out["only_b"] == int(np.sum(~a & b))
  n = out["only_a"] + out["only_b"]
  want = 1.0 if n == 0 else scipy_stats.binomtest(out["only_a"], n).pvalue
  assert out["p_value"] == pytest.approx(want, rel=1e-9)
  assert out["difference"] == pytest.approx(a.mean() - b.mean())


def test_mcnemar_exact_known_answers():
  # 10 discordant images all one way: p = 2 / 2^10.
  a = np.r_[np.ones(10, bool), np.zeros(5, bool)]
  assert stats.mcnemar_exact(a, np.zeros(15, bool))["p_value"] == pytest.approx(2 / 1024)
  assert stats.mcnemar_exact(a, a)["p_value"] == 1.0
  with pytest.raises(ValueError, match="correct_b"):
    stats.mcnemar_exact(a, a[:3])
  with pytest.raises(ValueError, match="correct_a"):
    stats.mcnemar_exact(np.array([0, 2]), np.array([0, 1]))


def test_paired_bootstrap_of_a_constant_shift_and_of_noise(key):
  rng = np.random.default_rng(0)
  x = rng.normal(size=400)
  out = stats.paired_bootstrap(key, lambda a, b: np.mean(a - b), [x + 0.5, x])
  assert out["estimate"] == pytest.approx(0.5) and out["low"] == pytest.approx(0.5)
  assert out["high"] == pytest.approx(0.5) and out["p_value"] == 0.0
  # Two independent noise draws: the interval covers 0 and has the width of
  # a paired mean's, 2 x 1.96 x sqrt(2 / n).
  y = rng.normal(size=400)
  out = stats.paired_bootstrap(key, lambda a, b: np.mean(a - b), [x, y], n_resamples=1000)
  assert out["low"] < out["estimate"] < out["high"]
  assert out["high"] - out["low"] == pytest.approx(2 * 1.96 * np.sqrt(2 / 400) *
                                                   np.std(x - y) / np.sqrt(2), rel=0.2)
  with pytest.raises(ValueError, match=r"arrays\[1\] must have 400 rows"):
    stats.paired_bootstrap(key, np.mean, [x, y[:3]])


def test_mistake_similarity_difference_is_the_difference_of_the_metric(key):
  rng = np.random.default_rng(1)
  s = rng.uniform(size=(4, 4))
  y = rng.integers(0, 4, 300)
  pa, pb = rng.integers(0, 4, 300), rng.integers(0, 4, 300)
  out = stats.bootstrap_mistake_similarity_difference(key, y, pa, pb, s, n_resamples=200)
  want = metrics.mean_mistake_similarity(y, pa, s) - metrics.mean_mistake_similarity(y, pb, s)
  assert out["estimate"] == pytest.approx(want, abs=1e-6)
  assert out["low"] <= out["estimate"] <= out["high"]
  # a's mistakes all land on the most similar wrong class, b's on the least:
  # the difference is positive beyond resampling.
  off = s - 10 * np.eye(4)
  best, worst = off.argmax(1), np.where(np.eye(4, dtype=bool), 10, s).argmin(1)
  out = stats.bootstrap_mistake_similarity_difference(key, y, best[y], worst[y], s,
                                                      n_resamples=300)
  assert out["low"] > 0 and out["p_value"] == 0.0


def test_t_test_over_seeds_matches_scipy():
  d = [0.62, 0.41, 0.83]
  out = stats.t_test_over_seeds(d)
  ref = scipy_stats.ttest_1samp(d, 0.0)
  assert out["t"] == pytest.approx(ref.statistic) and out["p_value"] == pytest.approx(ref.pvalue)
  assert stats.t_test_over_seeds([0.3])["p_value"] is None
  assert stats.verdict(0.01, -0.2) == "detectably lower"
  assert stats.verdict(0.2, -0.2) == stats.NO_DIFFERENCE == stats.verdict(None, 1.0)
