"""Section 5, robustness: accuracy of the test half under perturbations, and
whether its adversarial inputs can be told from normal ones.

Gaussian noise (``noise`` stddevs), FGSM against the true label (``fgsm``
epsilons) and the CIFAR-10-C-style corruptions of
:mod:`explicable_jax.robustness` (``corruptions`` at ``severities``).

Then Wang et al.'s question (ICSE 2019, "Adversarial Sample Detection for Deep
Neural Network through Model Mutation Testing"): the first
``adversarial_images`` correctly classified test images are attacked with
FGSM (the largest ``fgsm`` epsilon) and DeepFool (overshoot 0.02, 50 steps,
the paper's), and the successful adversarial inputs are scored against the
clean images by the label change rate over the error-detection section's
mutants (:mod:`explicable_jax.detection.pipeline`: same key, operator, rate,
gate and, unless ``adversarial_mutants`` says otherwise, count, so the same
ensemble) and by MSP, the model's own confidence: AUROC of each score, the
adversarial inputs positive (:func:`adversarial_detection_stage`).
"""
from __future__ import annotations

import functools
from typing import Any

import jax
import numpy as np

from explicable_jax import conventions
from explicable_jax.app.audit.section import Section
from explicable_jax.detection import pipeline

__all__ = ["Robustness", "SECTION", "robustness_stage", "adversarial_detection_stage",
           "DEEPFOOL_SETTINGS", "DEEPFOOL_CANDIDATES"]

_STREAM = 5  # fold_in(run key, 5): the perturbations' key

DEEPFOOL_SETTINGS = {"overshoot": 0.02, "max_iter": 50}
"""DeepFool's settings in the audit: the paper's and Wang et al.'s."""
DEEPFOOL_CANDIDATES = 10
"""DeepFool considers the classes of the 10 largest scores (the reference
code's ``num_classes``); all of them for a model with 10 or fewer."""


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


def _attack_batch(clf, x, y, *, epsilon, candidates):
  """FGSM (``epsilon``, or the inputs when ``None``) and DeepFool of a batch,
  with the model's logits of both."""
  from explicable_jax import robustness as rb
  fg = x if epsilon is None else rb.fgsm(clf, x, y, epsilon)
  df = rb.deepfool(clf, x, y, candidates=candidates, **DEEPFOOL_SETTINGS)
  return fg, df, clf.logits(fg), clf.logits(df)


_attack = jax.jit(_attack_batch, static_argnames=("epsilon", "candidates"))


@conventions.boundary(x="inputs", y="labels", epsilon="perturbation")
def adversarial_detection_stage(key: jax.Array, clf, x, y, *, num_images: int,
                                epsilon: float | None, mutants: pipeline.Mutants, gate,
                                batch_size: int = pipeline.BATCH_SIZE) -> dict:
  """How well LCR and MSP separate adversarial inputs from normal ones
  (Wang et al., ICSE 2019).

  The normal inputs are the first ``num_images`` rows of ``(x, y)`` that the
  model classifies correctly. Each is attacked with FGSM at ``epsilon``
  against its label and with DeepFool (:data:`DEEPFOOL_SETTINGS`); an attack
  succeeds where the model's label changes, and only successful adversarial
  inputs are kept. Every input ``v`` gets two error scores, higher = more
  suspicious: the label change rate over ``mutants``,

  .. math:: \\mathrm{LCR}(v) = \\frac{1}{M} \\sum_{m=1}^{M} [m(v) \\ne f(v)]

  (against the label the model gives ``v``, as Wang et al.), and MSP, ``1 -
  max softmax(f(v))``. Per attack and score, the AUROC of the adversarial
  inputs (positive) against the normal ones:

  .. math:: \\mathrm{AUROC} = P(s(v_{adv}) > s(v_{normal})) + \\tfrac12 P(=)

  Args:
    key: the run's key (the mutants come from :func:`~explicable_jax.
      detection.pipeline.lcr_scores`' stream of it, as the error-detection
      section's do).
    clf: the model.
    x, y: the test half.
    num_images: how many correctly classified inputs to attack.
    epsilon: FGSM's budget in input units, or ``None`` for no FGSM.
    mutants: the ensemble (:class:`~explicable_jax.detection.pipeline.Mutants`).
    gate: :func:`~explicable_jax.detection.pipeline.accuracy_gate`'s function.
    batch_size: images per jitted call of the attacks.

  Returns:
    ``{"normal": number of normal inputs, "normal_mean": {score: mean},
    "attacks": [{"attack", "strength", "attacked", "adversarial", "mean_l2",
    "mean": {score: mean}, "auroc": {score: AUROC or None}}, ...], "mutants",
    "operator", "rate"}``; an attack with no successful input has AUROC
    ``None``.
  """
  from explicable_jax import _batching, metrics
  from explicable_jax.detection import scores
  x, y = np.asarray(x), np.asarray(y)
  logits = pipeline.predict_logits(clf, x, batch_size=batch_size)
  keep = np.flatnonzero(logits.argmax(-1) == y)[:num_images]
  if keep.size == 0:
    raise ValueError("the model classifies none of the test half correctly: no normal input "
                     "to attack; check the model and the data.")
  xn, yn, zn = x[keep], y[keep], logits[keep]
  candidates = None if clf.num_classes <= DEEPFOOL_CANDIDATES else DEEPFOOL_CANDIDATES
  fg, df, zf, zd = _batching.map_batches(
      functools.partial(_attack, epsilon=epsilon, candidates=candidates), [xn, yn],
      batch_size=batch_size, args=(clf,))
  attacks = [("DeepFool", f"overshoot {DEEPFOOL_SETTINGS['overshoot']:g}, at most "
              f"{DEEPFOOL_SETTINGS['max_iter']} steps", df, zd)]
  if epsilon is not None:
    attacks.insert(0, ("FGSM", f"epsilon {epsilon * 255:g}/255", fg, zf))
  sets = [("normal", xn, zn)]
  rows: list[dict[str, Any]] = []
  for name, strength, adv, z in attacks:
    ok = z.argmax(-1) != yn
    sets.append((name, adv[ok], z[ok]))
    delta = (adv[ok] - xn[ok]).reshape(int(ok.sum()), int(np.prod(xn.shape[1:])))  # 0 rows too
    rows.append({"attack": name, "strength": strength, "attacked": len(keep),
                 "adversarial": int(ok.sum()),
                 "mean_l2": float(np.linalg.norm(delta, axis=1).mean()) if ok.any() else None})
  # One LCR call for every input: the mutants are drawn and gated once.
  lcr, _ = pipeline.lcr_scores(key, clf, {"all": np.concatenate([v for _, v, _ in sets])},
                               {"all": np.concatenate([z.argmax(-1) for _, _, z in sets])},
                               mutants, gate)
  bounds = np.cumsum([0] + [len(v) for _, v, _ in sets])
  by_set = {name: {"LCR": lcr["all"][lo:hi], "MSP": np.asarray(scores.msp(z))}
            for (name, _, z), lo, hi in zip(sets, bounds[:-1], bounds[1:])}
  normal = by_set["normal"]
  for row in rows:
    adv = by_set[row["attack"]]
    n = row["adversarial"]
    row["mean"] = {s: float(adv[s].mean()) if n else None for s in normal}
    row["auroc"] = {s: metrics.auroc(np.concatenate([adv[s], normal[s]]),
                                     np.r_[np.ones(n, bool), np.zeros(len(keep), bool)])
                    if n else None for s in normal}
  return {"normal": len(keep), "normal_mean": {s: float(v.mean()) for s, v in normal.items()},
          "attacks": rows, "mutants": mutants.count, "operator": mutants.operator,
          "rate": mutants.rate}


def _ensemble(config, ctx) -> tuple[pipeline.Mutants, object, str]:
  """The error-detection section's mutants (its rate, or the rate its rule
  chooses when it did not run) with ``adversarial_mutants`` of them, the
  gate, and where they come from."""
  clf = ctx.clf
  layers = pipeline.mutated_layers(clf)
  gate = pipeline.accuracy_gate(clf, ctx.splits["validation"])
  detection = ctx.results.get("detection")
  if detection is not None:
    rate, source = detection["rate"], "the error-detection section's rate"
  else:
    from explicable_jax.app.audit import error_detection
    trials = error_detection._rate_trials(config, ctx, gate, layers)
    rate = pipeline.choose_rate(trials, operator=config.operator)
    source = "the rate the error-detection section's rule chooses"
  count = config.mutants if config.adversarial_mutants is None else config.adversarial_mutants
  if count == config.mutants:
    source += " and mutants (the same ensemble)"
  return pipeline.Mutants(count, config.operator, rate, layers), gate, source


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
    if not config.adversarial_images:
      return rob
    mutants, gate, source = _ensemble(config, ctx)
    epsilon = max(config.fgsm) if config.fgsm else None
    adv = ctx.cache.json(
        "adversarial_detection",
        {"images": config.adversarial_images, "epsilon": epsilon, "operator": mutants.operator,
         "rate": mutants.rate, "mutants": mutants.count, "layers": mutants.layers,
         "deepfool": DEEPFOOL_SETTINGS},
        lambda: adversarial_detection_stage(ctx.key, ctx.clf, x, y,
                                            num_images=config.adversarial_images,
                                            epsilon=epsilon,
                                            mutants=mutants, gate=gate))
    made = ", ".join(f"{r['attack']} {r['adversarial']}" for r in adv["attacks"])
    ctx.say(f"  adversarial inputs: {made} of {adv['normal']} ({ctx.elapsed():.0f}s)")
    return {**rob, "adversarial_detection": {**adv, "mutants_from": source}}

  def summary(self, rob, ctx) -> list[tuple[str, str]]:
    rows = []
    if len(rob["rows"]) >= 2:
      worst = min(rob["rows"][1:], key=lambda r: r["accuracy"])
      rows.append(("How robust is it?",
                   f"clean {rob['rows'][0]['accuracy']:.3f}; lowest: {worst['perturbation']} "
                   f"{worst['strength']} {worst['accuracy']:.3f}"))
    adv = rob.get("adversarial_detection")
    if adv is not None:
      parts = [f"{r['attack']} {_auroc(r, 'LCR', 3)} / {_auroc(r, 'MSP', 3)} "
               f"({r['adversarial']} inputs)" for r in adv["attacks"]]
      rows.append(("Can its adversarial inputs be told from normal ones?",
                   f"AUROC of LCR / MSP: {'; '.join(parts)}; against {adv['normal']} normal "
                   "inputs"))
    return rows

  def report(self, page, rob, figure) -> None:
    page.table(["perturbation", "strength", "accuracy"],
               [[r["perturbation"], r["strength"], r["accuracy"]] for r in rob["rows"]],
               caption="Accuracy of the test half; FGSM against the true label.")
    adv = rob.get("adversarial_detection")
    if adv is None:
      return
    page.paragraph(
        f"Adversarial inputs (Wang et al., ICSE 2019): the first {adv['normal']} correctly "
        "classified test images are the normal inputs; each is attacked, and the successful "
        "adversarial inputs (the model's label changed) are told from the normal ones by "
        f"LCR, the label change rate over {adv['mutants']} {adv['operator']} mutants at rate "
        f"{adv['rate']} ({adv['mutants_from']}), against the label the model gives each input, "
        "and by MSP, one minus the model's top softmax probability. AUROC: adversarial "
        "inputs positive, 0.5 = chance. Used: the successful adversarial inputs, or the "
        "normal ones; mean L2: the perturbation's size in input units.")
    page.table(["inputs", "budget", "attacked", "used", "mean L2", "mean LCR", "mean MSP",
                "AUROC of LCR", "AUROC of MSP"],
               [[f"{r['attack']} adversarial", r["strength"], r["attacked"], r["adversarial"],
                 _number(r["mean_l2"]), _number(r["mean"]["LCR"]), _number(r["mean"]["MSP"]),
                 _auroc(r, "LCR"), _auroc(r, "MSP")] for r in adv["attacks"]]
               + [["normal", "-", "-", adv["normal"], "-", _number(adv["normal_mean"]["LCR"]),
                   _number(adv["normal_mean"]["MSP"]), "-", "-"]],
               caption="Adversarial inputs of the test half against the normal ones.")


def _number(v, digits: int = 4) -> str:
  return "-" if v is None else f"{v:.{digits}f}"


def _auroc(row: dict, score: str, digits: int = 4) -> str:
  return _number(row["auroc"][score], digits)


SECTION = Robustness()
