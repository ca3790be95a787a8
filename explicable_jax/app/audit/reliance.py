"""Section 3, reliance: does it use the features it should not? (Ross, Hughes and Doshi-Velez, IJCAI 2017).

With ``annotations`` (an ``.npz`` whose ``mask`` marks the features the model
should *not* use: one ``(H, W[, C])`` mask for every image, or one per test
image), the share of the input gradient's mass on the annotated features
(``|d sum_k log p_k / dx|``, the quantity RRR penalises) beside the annotated
share of the input (what a uniform attribution gives), and the accuracy when
the annotated features are replaced by the training images' per-channel mean.
"""
from __future__ import annotations

import hashlib

import numpy as np

from explicable_jax import conventions
from explicable_jax.app.audit.section import Section

__all__ = ["Reliance", "SECTION", "reliance_stage"]

_FIGURE_IMAGES = 6


@conventions.boundary(x="inputs", y="labels", mask="mask")
def reliance_stage(clf, x, y, mask, fill) -> tuple[dict, np.ndarray]:
  """Section 3's numbers: the gradient share on the annotated features, the
  accuracy with them masked.

  .. math:: s = \\frac{1}{N} \\sum_i \\frac{\\sum_j m_{ij} |g_{ij}|}{\\sum_j |g_{ij}|},
            \\qquad g_i = \\nabla_{x_i} \\sum_k \\log p_k(x_i)

  Args:
    clf: the model.
    x, y: the test half.
    mask: ``(N, H, W, C)`` annotation masks in ``[0, 1]``.
    fill: the value that replaces the annotated features.

  Returns:
    ``(numbers, |g|)``.
  """
  from explicable_jax import robustness, rrr
  g = np.abs(rrr.model_input_gradients(clf, x, batch_size=500))
  total = g.reshape(len(g), -1).sum(1)
  on = (g * mask).reshape(len(g), -1).sum(1)
  share = np.where(total > 0, on / np.maximum(total, 1e-30), 0.0)
  area = mask.reshape(len(mask), -1).mean(1)
  masked = x * (1 - mask) + fill * mask
  return {"gradient_share_on_annotation": float(share.mean()),
          "annotated_share_of_input": float(area.mean()),
          "ratio": float(share.mean() / max(area.mean(), 1e-12)),
          "accuracy": robustness.accuracy_under(clf, x, y),
          "accuracy_masked": robustness.accuracy_under(clf, masked, y),
          "fill": "per-channel mean of the training images",
          "images": int(len(x))}, g


class Reliance(Section):
  name = "reliance"
  title = "Reliance: does it use the features it should not?"

  def check(self, config, ctx) -> None:
    ctx.mask  # noqa: B018 - a mask of the wrong shape fails before any work

  def run(self, config, ctx) -> dict:
    if ctx.mask is None:
      return {"given": False, "note": "no annotations given"}
    x, y = ctx.splits["test"]
    fill = ctx.splits["train"][0].mean(axis=(0, 1, 2), keepdims=True)[0]
    with open(config.annotations, "rb") as fh:
      ann_sha = hashlib.sha1(fh.read()).hexdigest()
    return ctx.cache.json("reliance", {"annotations": ann_sha,
                                       "train_limit": config.train_limit},
                          lambda: {"given": True,
                                   **reliance_stage(ctx.clf, x, y, ctx.mask, fill)[0]})

  def summary(self, rel, ctx) -> list[tuple[str, str]]:
    q = "Does it rely on the features it should not?"
    if not rel.get("given"):
      return [(q, "not measured: no annotations given")]
    return [(q, f"{rel['gradient_share_on_annotation']:.1%} of the input gradient lies on "
             f"the annotated {rel['annotated_share_of_input']:.1%} of the input "
             f"({rel['ratio']:.1f}x uniform); accuracy {rel['accuracy']:.3f} -> "
             f"{rel['accuracy_masked']:.3f} with them masked")]

  def figure(self, rel, ctx):
    if not rel.get("given"):
      return None
    import matplotlib.pyplot as plt
    from explicable_jax import rrr, viz
    x, y = ctx.splits["test"]
    grads = np.abs(rrr.model_input_gradients(ctx.clf, x[:_FIGURE_IMAGES]))
    n = min(_FIGURE_IMAGES, len(x))
    fig, axes = plt.subplots(2, n, figsize=(1.8 * n, 3.8), squeeze=False)
    for j in range(n):
      img = x[j][..., 0] if x.shape[-1] == 1 else x[j]
      axes[0, j].imshow(np.clip(img, 0, 1), cmap="gray" if img.ndim == 2 else None)
      axes[0, j].set_title(ctx.names[int(y[j])][:12], fontsize=8)
      axes[0, j].axis("off")
      viz.attribution_overlay(x[j], grads[j].sum(-1), ax=axes[1, j], signed=False)
    return fig

  def report(self, page, rel, figure) -> None:
    if rel.get("given"):
      page.paragraph(
          "Ross, Hughes and Doshi-Velez: the share of |d sum_k log p_k / dx| on the annotated "
          "features, against their share of the input (what a uniform attribution gives); "
          f"and the accuracy with them replaced by the {rel['fill']}.")
      page.table(["measure", "value"],
                 [["gradient share on the annotation", rel["gradient_share_on_annotation"]],
                  ["annotated share of the input", rel["annotated_share_of_input"]],
                  ["ratio", rel["ratio"]], ["accuracy", rel["accuracy"]],
                  ["accuracy, annotated features masked", rel["accuracy_masked"]]])
      page.figure(figure, "Test images and |input gradient| over them.")
    else:
      page.paragraph("No annotations were given, so reliance was not measured. Give an .npz "
                     "whose 'mask' marks the features the model should not use (one mask for "
                     "all images or one per test image): --annotations FILE.npz.", note=True)


SECTION = Reliance()
