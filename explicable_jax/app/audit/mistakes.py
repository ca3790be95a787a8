"""Section 1, mistakes: how explicable are they? (Olmo, Sengupta and Kambhampati, ICCV 2021).

The confusion matrix of the test half; the mean class similarity ``W`` of the
mistakes beside the chance baseline (each mistake moved to a uniformly random
wrong class); the most and least explicable confusions; with a reference
model, the hard and soft explicability scores of the two.
"""
from __future__ import annotations

import numpy as np

from explicable_jax import conventions
from explicable_jax import metrics
from explicable_jax.app.audit.section import Section

__all__ = ["Mistakes", "SECTION", "mistakes_stage"]


def _confusions(cm, w, names, k=5):
  """The off-diagonal cells with mistakes, most and least similar first."""
  rows = []
  for i in range(cm.shape[0]):
    for j in range(cm.shape[1]):
      if i != j and cm[i, j] > 0:
        rows.append({"true": names[i], "predicted": names[j], "count": int(cm[i, j]),
                     "similarity": float(w[i, j])})
  frequent = sorted(rows, key=lambda r: (-r["count"], -r["similarity"]))[:k]
  most = sorted(rows, key=lambda r: (-r["similarity"], -r["count"]))[:k]
  least = sorted(rows, key=lambda r: (r["similarity"], -r["count"]))[:k]
  return frequent, most, least


@conventions.boundary(y="labels")
def mistakes_stage(y, pred, w, names, reference_pred=None) -> dict:
  """Section 1's numbers from labels and predictions (host-side).

  With ``C`` classes, the chance baseline of the mean similarity of the
  mistakes moves each mistake of true class ``i`` to a uniformly random wrong
  class:

  .. math:: \\bar W_{\\text{chance}} = \\frac{1}{|E|} \\sum_{e \\in E}
            \\frac{1}{C - 1} \\sum_{j \\ne y_e} W_{y_e j}

  Args:
    y: ``(N,)`` labels.
    pred: ``(N,)`` predictions.
    w: ``(C, C)`` class similarity.
    names: the ``C`` class names.
    reference_pred: a reference model's predictions (hard and soft scores).

  Returns:
    accuracy, mistakes, confusion, similarity, the mean similarity of the
    mistakes and its chance baseline, the frequent, most and least explicable
    confusions, and with a reference its accuracy and the hard/soft scores.
  """
  c = w.shape[0]
  cm = np.asarray(metrics.confusion_matrix(y, pred, c))
  wrong = pred != y
  out = {"accuracy": float(1 - wrong.mean()), "mistakes": int(wrong.sum()),
         "confusion": cm.tolist(), "similarity": np.asarray(w).tolist()}
  if wrong.any():
    out["mean_similarity_of_mistakes"] = metrics.mean_mistake_similarity(y, pred, w)
    off = (np.asarray(w).sum(1) - np.diag(w)) / (c - 1)
    out["chance_similarity_of_mistakes"] = float(off[y[wrong]].mean())
    freq, most, least = _confusions(cm, np.asarray(w), names)
    out.update(frequent_confusions=freq, most_explicable=most, least_explicable=least)
  if reference_pred is not None:
    ref_wrong = reference_pred != y
    out["reference"] = {"accuracy": float(1 - ref_wrong.mean())}
    if ref_wrong.any():
      out["reference"]["mean_similarity_of_mistakes"] = metrics.mean_mistake_similarity(
          y, reference_pred, w)
    out["hard_soft"] = metrics.hard_soft_scores({"model": pred, "reference": reference_pred},
                                                y, w)
  return out


class Mistakes(Section):
  name = "mistakes"
  title = "Mistakes: how explicable are they?"

  def check(self, config, context) -> None:
    context.similarity  # noqa: B018 - a missing WordNet or bad matrix fails before any work

  def run(self, config, context) -> dict:
    w, source = context.similarity
    out = mistakes_stage(context.splits["test"][1], context.predictions["test"], w,
                         context.names, context.reference_predictions)
    out["similarity_source"] = source
    return out

  def summary(self, m, context) -> list[tuple[str, str]]:
    rows = [("How accurate is it?", f"{m['accuracy']:.4f} on the test half "
             f"({m['mistakes']} mistakes)")]
    if "mean_similarity_of_mistakes" in m:
      top = m["frequent_confusions"][0]
      gap = m["mean_similarity_of_mistakes"] - m["chance_similarity_of_mistakes"]
      # float32 mean against a float64 chance value: equal within rounding is
      # equal (a uniform similarity, e.g. WordNet on digit names, says nothing).
      tie = abs(gap) <= 1e-6 * max(1.0, abs(m["chance_similarity_of_mistakes"]))
      where = ("equal to chance: the similarity does not tell these mistakes apart" if tie
               else "above chance" if gap > 0 else "not above chance")
      rows.append(("How explicable are its mistakes?",
                   f"mean similarity {m['mean_similarity_of_mistakes']:.3f} against "
                   f"{m['chance_similarity_of_mistakes']:.3f} for mistakes at random "
                   f"({where}); most frequent: "
                   f"{top['true']} taken for {top['predicted']} ({top['count']} times)"))
    return rows

  def figure(self, m, context):
    import matplotlib.pyplot as plt
    from explicable_jax import viz
    short = [n[:12] for n in context.names]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    viz.heatmap(np.asarray(m["similarity"]), short, ax=axes[0], title="similarity W")
    viz.heatmap(np.asarray(m["confusion"], float), short, ax=axes[1],
                title="confusion (test half)", fmt="{:.0f}")
    return fig

  def report(self, page, m, figure) -> None:
    page.paragraph(f"Similarity W: {m['similarity_source']}. Mean W of the mistakes against "
                   "the chance baseline (each mistake sent to a uniformly random wrong "
                   "class); Olmo, Sengupta and Kambhampati (ICCV 2021).")
    rows = [["accuracy (test half)", m["accuracy"]], ["mistakes", m["mistakes"]]]
    if "mean_similarity_of_mistakes" in m:
      rows += [["mean W of the mistakes", m["mean_similarity_of_mistakes"]],
               ["chance baseline", m["chance_similarity_of_mistakes"]]]
    if "reference" in m:
      r = m["reference"]
      rows += [["reference accuracy", r["accuracy"]],
               ["reference mean W of mistakes", r.get("mean_similarity_of_mistakes", "n/a")]]
    page.table(["measure", "value"], rows)
    for key, title in (("frequent_confusions", "Most frequent confusions"),
                       ("most_explicable", "Most explicable confusions (highest W)"),
                       ("least_explicable", "Least explicable confusions (lowest W)")):
      if key in m:
        page.table(["true", "predicted", "count", "W"],
                   [[c["true"], c["predicted"], c["count"], c["similarity"]] for c in m[key]],
                   caption=title)
    if "hard_soft" in m:
      hs = m["hard_soft"]
      page.table(["model", "hard score", "soft score"],
                 [[n, hs["hard"][n], hs["soft"][n]] for n in hs["hard"]],
                 caption=f"Hard and soft explicability scores over the "
                         f"{hs['num_common_mistakes']} test images both models get wrong.")
    page.figure(figure, "The similarity matrix W and the confusion matrix of the test half "
                "(rows: true class).")


SECTION = Mistakes()
