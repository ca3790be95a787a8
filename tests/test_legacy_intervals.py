"""The legacy Olmo page (`explicable_cifar10.md`) quotes its accuracy intervals
from `legacy_intervals.py`: Newcombe's interval reproduces his published
examples, every interval the script computes is on the page in its words, the
committed JSON is the script's output, and the mistake measures are untested."""
from __future__ import annotations

import importlib.util
import json
import os

import pytest

from explicable_jax import stats

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
RESULTS = os.path.join(ROOT, "experiments", "results", "explicable_cifar10")
PAGE = os.path.join(ROOT, "experiments", "results", "explicable_cifar10.md")


def _load():
  path = os.path.join(ROOT, "experiments", "explicable_cifar10", "legacy_intervals.py")
  spec = importlib.util.spec_from_file_location("legacy_intervals", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


@pytest.mark.parametrize("k_a,n_a,k_b,n_b,lower,upper", [
    (56, 70, 48, 80, 0.0524, 0.3339),   # Newcombe (1998), Table II, example (a)
    (9, 10, 3, 10, 0.1705, 0.8090),     # example (b)
    (5, 56, 0, 29, -0.0381, 0.1926),    # example (c)
])
def test_newcombe_matches_published_examples(k_a, n_a, k_b, n_b, lower, upper):
  d, lo, hi = _load().newcombe_difference(k_a, n_a, k_b, n_b)
  assert d == pytest.approx(k_a / n_a - k_b / n_b)
  assert (lo, hi) == pytest.approx((lower, upper), abs=5e-5)


def test_wilson_matches_published_example():
  # Newcombe (1998, single proportion), 81 / 263: 0.2553 to 0.3662.
  assert _load().wilson(81, 263) == pytest.approx((0.2553, 0.3662), abs=5e-5)
  with pytest.raises(ValueError, match="successes=3, n=2"):
    _load().wilson(3, 2)


def test_page_quotes_every_interval_and_json_is_current():
  mod = _load()
  with open(os.path.join(RESULTS, "results.json")) as f:
    out = mod.compute(json.load(f))
  with open(os.path.join(RESULTS, "legacy_intervals.json")) as f:
    assert json.load(f) == json.loads(json.dumps(out))
  page = " ".join(open(PAGE).read().split())
  assert len(out["comparisons"]) == 23
  for row in out["comparisons"]:
    assert row["text"] in page, row
    lo, hi = row["ci95"]
    assert (row["verdict"] == stats.NO_DIFFERENCE) == (lo <= 0 <= hi)
  by_pair = {(r["a"], r["b"], r["metric"]): r for r in out["comparisons"]}
  assert by_pair[("IHL (L1)", "CCE +1 epoch", "top1")]["verdict"] == stats.NO_DIFFERENCE
  assert by_pair[("CHL (L1)", "CCE", "gaussian_noise_0.2")]["verdict"] == stats.NO_DIFFERENCE
  assert by_pair[("CHL (L1)", "CCE +1 epoch", "top1")]["verdict"] == "detectably lower"
  assert out["best_fgsm_0.3_against_chance"]["text"] in page


def test_page_calls_mistake_measures_untested():
  page = " ".join(open(PAGE).read().split())
  assert "Explicability of mistakes: untested" in page
  for old in ("most explicable", "matches the cross-entropy control", "is above both controls",
              "separates nothing", "no error bars"):
    assert old not in page, old
