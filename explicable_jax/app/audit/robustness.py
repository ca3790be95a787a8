"""Section 5, robustness: accuracy of the test half under perturbations.

Gaussian noise (``noise`` stddevs), FGSM against the true label (``fgsm``
epsilons) and the CIFAR-10-C-style corruptions of
:mod:`explicable_jax.robustness` (``corruptions`` at ``severities``).
"""
from __future__ import annotations

import jax
import numpy as np

from explicable_jax import conventions
from explicable_jax.app.audit.section import Section

__all__ = ["Robustness", "SECTION", "robustness_stage"]

_STREAM = 5  # fold_in(run key, 5): the perturbations' key


@conventions.boundary(x="inputs", y="labels")
def robustness_stage(key, clf, x, y, *, noise, fgsm, corruptions, severities) -> dict:
  """Section 5's numbers: the accuracy of ``(x, y)`` clean and under each
  perturbation.

  Args:
    key: PRNG key of the noise and the corruptions.
    clf: the model.
    x, y: the test half.
    noise: Gaussian noise stddevs.
    fgsm: FGSM epsilons (inputs in [0, 1]).
    corruptions, severities: the corruptions and their severities.

  Returns:
    ``{"rows": [{"perturbation", "strength", "accuracy"}, ...]}``, clean first.
  """
  from explicable_jax import robustness as rb
  rows = [{"perturbation": "none", "strength": "-", "accuracy": rb.accuracy_under(clf, x, y)}]
  for i, s in enumerate(noise):
    k = jax.random.fold_in(key, i)
    rows.append({"perturbation": "Gaussian noise", "strength": f"stddev {s:g}",
                 "accuracy": rb.accuracy_under(
                     clf, x, y, key=k, perturb=lambda kk, xb, yb, s=s:
                     rb.gaussian_noise(kk, xb, s))})
  for e in fgsm:
    rows.append({"perturbation": "FGSM", "strength": f"epsilon {e * 255:g}/255",
                 "accuracy": rb.accuracy_under(
                     clf, x, y, key=key, perturb=lambda kk, xb, yb, e=e:
                     rb.fgsm(clf, xb, yb, e))})
  for name, sev, xs in rb.corruption_suite(jax.random.fold_in(key, 100), x,
                                           corruptions=corruptions, severities=severities):
    rows.append({"perturbation": name.replace("_", " "), "strength": f"severity {sev}",
                 "accuracy": rb.accuracy_under(clf, np.asarray(xs), y)})
  return {"rows": rows}


class Robustness(Section):
  name = "robustness"
  title = "Robustness"

  def run(self, config, ctx) -> dict:
    x, y = ctx.splits["test"]
    settings = {"noise": list(config.noise), "fgsm": list(config.fgsm),
                "corruptions": list(config.corruptions),
                "severities": list(config.severities)}
    rob = ctx.cache.json("robustness", settings, lambda: robustness_stage(
        jax.random.fold_in(ctx.key, _STREAM), ctx.clf, x, y, noise=config.noise,
        fgsm=config.fgsm, corruptions=config.corruptions, severities=config.severities))
    ctx.say(f"robustness: {len(rob['rows'])} settings ({ctx.elapsed():.0f}s)")
    return rob

  def summary(self, rob, ctx) -> list[tuple[str, str]]:
    if len(rob["rows"]) < 2:
      return []
    worst = min(rob["rows"][1:], key=lambda r: r["accuracy"])
    return [("How robust is it?",
             f"clean {rob['rows'][0]['accuracy']:.3f}; lowest: {worst['perturbation']} "
             f"{worst['strength']} {worst['accuracy']:.3f}")]

  def report(self, page, rob, figure) -> None:
    page.table(["perturbation", "strength", "accuracy"],
               [[r["perturbation"], r["strength"], r["accuracy"]] for r in rob["rows"]],
               caption="Accuracy of the test half; FGSM against the true label.")


SECTION = Robustness()
