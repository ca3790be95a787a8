"""Section 4, hesitation: where does it hesitate? (Wang and Vasconcelos, NeurIPS 2019).

The insecurities of the ``hardest`` test images by normalised entropy
(gradient class maps at ``layer``, entropy difficulty map, top ``r = 0.2``
region), drawn.
"""
from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from explicable_jax import conventions
from explicable_jax.app.audit.section import Section

__all__ = ["Hesitation", "SECTION", "hesitation_stage", "mask_to_rows", "rows_to_mask"]


@conventions.boundary(mask="mask")
def mask_to_rows(mask) -> list[str]:
  """An ``(H, W)`` boolean mask as ``H`` strings of ``0`` and ``1`` (compact in JSON)."""
  if np.ndim(mask) != 2:
    raise ValueError(f"mask must be one (H, W) mask; got shape {np.shape(mask)}.")
  return ["".join("1" if v else "0" for v in row) for row in np.asarray(mask, bool)]


def rows_to_mask(rows: Sequence[str]) -> np.ndarray:
  """The inverse of :func:`mask_to_rows`."""
  if isinstance(rows, str) or any(not isinstance(r, str) or set(r) - {"0", "1"} for r in rows):
    raise ValueError("rows must be strings of 0 and 1 (mask_to_rows' form), one per mask row; "
                     f"got {rows!r:.80}.")
  if len({len(r) for r in rows}) > 1:
    raise ValueError(f"rows must all have the same length (a rectangular mask); got lengths "
                     f"{sorted({len(r) for r in rows})}.")
  return np.array([[c == "1" for c in row] for row in rows], bool)


@conventions.boundary(x="inputs", y="labels", logits="logits")
def hesitation_stage(clf, x, y, logits, layer, hardest, names, r=0.2) -> dict:
  """Section 4's numbers: the insecurities of the ``hardest`` test images.

  Args:
    clf: the model.
    x, y, logits: the test half and the model's logits of it.
    layer: the split point of the class maps (``None``: input space).
    hardest: how many images, by normalised entropy.
    names: the class names.
    r: the share of the region kept (Wang and Vasconcelos: 0.2).

  Returns:
    The images with their insecurities (masks as rows of 0/1), the most
    frequent strongest class pairs, the mean normalised entropy.
  """
  from explicable_jax import deliberative
  ent = np.asarray(deliberative.normalized_entropy(jnp.asarray(logits)))
  idx = np.argsort(-ent, kind="stable")[:hardest]
  if layer is None:  # no split point: the maps live in input space
    items = deliberative.insecurities(lambda v: v, clf.logits, x[idx], r=r, top_k=5, top=3)
  else:
    items = deliberative.insecurities(clf, x[idx], layer=layer, r=r, top_k=5, top=3)
  images = []
  for i, its in zip(idx, items):
    images.append({
        "index": int(i), "label": names[int(y[i])], "predicted": names[int(logits[i].argmax())],
        "normalized_entropy": float(ent[i]),
        "insecurities": [{"class_a": names[d["class_a"]], "class_b": names[d["class_b"]],
                          "strength": float(d["strength"]), "mask": mask_to_rows(d["mask"])}
                         for d in its]})
  pairs: dict[str, int] = {}
  for im in images:
    if im["insecurities"]:
      d = im["insecurities"][0]
      p = " / ".join(sorted((d["class_a"], d["class_b"])))
      pairs[p] = pairs.get(p, 0) + 1
  return {"layer": layer, "r": r, "images": images,
          "strongest_pairs": dict(sorted(pairs.items(), key=lambda kv: -kv[1])),
          "mean_normalized_entropy_test": float(ent.mean())}


class Hesitation(Section):
  name = "hesitation"
  title = "Hesitation: where does it hesitate?"

  def run(self, config, ctx) -> dict:
    x, y = ctx.splits["test"]
    # Insecurities need (H, W) maps: at the split point when its output is
    # spatial, else in input space.
    layer = ctx.layer
    if layer is not None:
      shape = jax.eval_shape(ctx.clf.split(layer)[0],
                             jax.ShapeDtypeStruct(x[:2].shape, np.float32))
      if len(jax.tree.leaves(shape)[0].shape) < 4:
        layer = None
    hes = ctx.cache.json("hesitation", {"layer": layer, "hardest": config.hardest},
                         lambda: hesitation_stage(ctx.clf, x, y, ctx.logits["test"], layer,
                                                  config.hardest, ctx.names))
    ctx.say(f"hesitation: {len(hes['images'])} hardest images ({ctx.elapsed():.0f}s)")
    return hes

  def summary(self, hes, ctx) -> list[tuple[str, str]]:
    if not hes["strongest_pairs"]:
      return []
    pair, n = next(iter(hes["strongest_pairs"].items()))
    k = len(hes["images"])
    return [("Where does it hesitate?",
             f"on the {k} hardest test images the strongest insecurity is most often "
             f"between {pair} ({n} of them)" if n > 1 else
             f"on the {k} hardest test images the strongest insecurities are "
             f"{len(hes['strongest_pairs'])} different class pairs (the hardest image: "
             f"{pair})")]

  def figure(self, hes, ctx):
    import matplotlib.pyplot as plt
    from explicable_jax import viz
    x = ctx.splits["test"][0]
    ims = hes["images"]
    fig, axes = plt.subplots(1, max(len(ims), 1), figsize=(2.0 * max(len(ims), 1), 2.8),
                             squeeze=False)
    for ax, im in zip(axes[0], ims):
      its = im["insecurities"]
      mask = rows_to_mask(its[0]["mask"]) if its else np.zeros(x.shape[1:3], bool)
      title = f"{im['label'][:10]} -> {im['predicted'][:10]}"
      if its:
        title += f"\n{its[0]['class_a'][:9]} / {its[0]['class_b'][:9]}"
      viz.insecurity_outline(x[im["index"]], mask, ax=ax, title=title, color="red", dim=0.0)
    return fig

  def report(self, page, h, figure) -> None:
    page.paragraph(
        "Wang and Vasconcelos (NeurIPS 2019): for the test images of highest normalised "
        f"entropy, the regions (top {h['r']:.0%} of m_a m_b d) where the class maps of two "
        f"likely classes and the entropy's difficulty map overlap"
        + (f", at layer {h['layer']}." if h["layer"] else ", in input space."))
    page.figure(figure, "The hardest test images; outlined: the strongest insecurity and its "
                "two classes.")
    page.table(["index", "label", "predicted", "normalised entropy",
                "the three strongest insecure pairs"],
               [[im["index"], im["label"], im["predicted"], im["normalized_entropy"],
                 ", ".join(f"{d['class_a']} / {d['class_b']} ({d['strength']:.3g})"
                           for d in im["insecurities"][:3])]
                for im in h["images"]])


SECTION = Hesitation()
