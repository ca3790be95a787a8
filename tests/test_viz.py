"""The host-side plots: what each draws, checked on its matplotlib artists."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from explicable_jax import metrics, viz  # noqa: E402


def test_heatmap_shows_the_matrix_and_writes_each_entry():
  m = np.arange(9.0).reshape(3, 3)
  ax = viz.heatmap(m, ["a", "b", "c"], title="W", fmt="{:.0f}")
  np.testing.assert_array_equal(ax.images[0].get_array(), m)
  assert sorted(t.get_text() for t in ax.texts) == sorted(str(i) for i in range(9))
  assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
  assert ax.get_title() == "W"
  big = viz.heatmap(np.ones((12, 12)))  # no numbers on a large matrix
  assert not big.texts
  plt.close("all")


def test_attribution_overlay_scales_by_the_largest_magnitude():
  img = np.zeros((4, 4, 3))
  a = np.zeros((4, 4))
  a[0, 0], a[1, 1] = 2.0, -4.0
  ax = viz.attribution_overlay(img, a)
  over = ax.images[1].get_array()
  assert over[0, 0] == 0.5 and over[1, 1] == -1.0
  summed = viz.attribution_overlay(img, np.stack([a, a], -1), signed=False)
  assert summed.images[1].get_array()[1, 1] == 1.0  # |(-4) + (-4)| / 8
  plt.close("all")


def test_insecurity_outline_draws_the_region_boundary_and_dims_the_rest():
  img = np.full((6, 6), 0.5)
  mask = np.zeros((6, 6), bool)
  mask[1:3, 2:5] = True
  ax = viz.insecurity_outline(img, mask, title="cat vs dog")
  assert ax.get_title() == "cat vs dog"
  shade = ax.images[1].get_array()
  assert shade[1, 2, 3] == 0.0 and shade[0, 0, 3] == 0.6  # alpha: inside clear, outside dim
  assert ax.collections, "a contour around the region"
  plt.close("all")


def test_roc_and_risk_coverage_curves_carry_each_scores_numbers():
  rng = np.random.default_rng(0)
  wrong = rng.random(200) < 0.3
  scores = {"good": wrong + rng.normal(0, 0.5, 200), "noise": rng.normal(size=200)}
  ax = viz.roc_curves(scores, wrong, title="t")
  labels = [t.get_text() for t in ax.get_legend().get_texts()]
  assert labels == [f"{k} ({metrics.auroc(s, wrong):.3f})" for k, s in scores.items()]
  assert len(ax.lines) == 3  # the two curves and the chance line
  rc = viz.risk_coverage_curves(scores, wrong)
  cov, risk = rc.lines[0].get_data()
  assert cov[-1] == pytest.approx(1.0) and risk[-1] == pytest.approx(wrong.mean())
  assert rc.get_legend().get_texts()[-1].get_text() == "oracle"
  plt.close("all")


def test_save_writes_the_figure(tmp_path):
  path = viz.save(viz.heatmap(np.eye(2)), str(tmp_path / "h.png"))
  assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("call, match", [
    (lambda: viz.heatmap(np.ones(3)), r"matrix must be a rank-2 array; got shape \(3,\)"),
    (lambda: viz.heatmap(np.full((2, 2), np.nan)), r"matrix must be finite"),
    (lambda: viz.heatmap(np.eye(3), ["a"]), r"labels must name the 3 rows; got 1"),
    (lambda: viz.attribution_overlay(np.zeros((4, 4)), np.zeros((3, 3))),
     r"attribution must cover the image's \(4, 4\) pixels; got shape \(3, 3\)"),
    (lambda: viz.insecurity_outline(np.zeros((4, 4)), np.zeros((4, 5))),
     r"mask must cover the image's \(4, 4\) pixels"),
    (lambda: viz.insecurity_outline(np.zeros((4, 4, 2)), np.zeros((4, 4))),
     r"image must be an \(H, W\), \(H, W, 1\) or \(H, W, 3\) image; got shape \(4, 4, 2\)"),
])
def test_bad_input_is_named(call, match):
  with pytest.raises(ValueError, match=match):
    call()
  plt.close("all")
