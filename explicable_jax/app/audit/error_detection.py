"""Section 2, error detection: can its errors be caught? (Wu, Michel and Briot; Wang et al., ICSE 2019).

The baseline MSP (the model's own confidence, Hendrycks and Gimpel), and any
other logit score of the registry asked for (``scores``); the label change
rate over ``mutants`` accuracy-gated mutants, the rate chosen among ``rates``
by the validation AUROC of a 10-mutant trial; Wu et al.'s conductance detector
at ``layer``; and the combination of MSP, LCR and the detector (LDA fitted on
the validation half). On the test half: AUROC, AURC, E-AURC, the paired
bootstrap gain over MSP, and the threshold that accepts ``coverage`` of the
validation half with the coverage and risk it gives on the test half.

The gate, the mutants' key, the conductance features and the detector are
:mod:`explicable_jax.detection.pipeline`'s, the same as ``explicable-jax
detect``'s.
"""
from __future__ import annotations

import jax
import numpy as np

from explicable_jax import detection, metrics
from explicable_jax.app.audit.section import Section
from explicable_jax.detection import pipeline
from explicable_jax.detection import scores as logit_scores

__all__ = ["ErrorDetection", "SECTION", "coverage_threshold", "BASELINE_NAME"]

BASELINE_NAME = "MSP"
"""The baseline's name in the audit's tables."""
_HALVES = pipeline.HALVES


coverage_threshold = metrics.coverage_threshold
"""The threshold that accepts ``coverage`` of the validation scores:
:func:`explicable_jax.metrics.coverage_threshold`."""


def _at_threshold(scores, wrong, t):
  accept = np.asarray(scores) <= t
  n = max(int(accept.sum()), 1)
  return {"threshold": t, "coverage": float(accept.mean()),
          "risk": float(wrong[accept].sum() / n),
          "errors_caught": float(wrong[~accept].sum() / max(int(wrong.sum()), 1))}


def _rate_trials(config, ctx, gate, layers) -> list[dict]:
  """Each candidate rate's trial (cached), or the record of why it failed."""
  from explicable_jax import mutation
  rates = list(config.rates)
  trials = []
  for r in rates:
    def trial(r=r):
      return pipeline.rate_trial(
          ctx.key, ctx.clf, ctx.splits["validation"], ctx.predictions["validation"],
          pipeline.Mutants(config.mutants, config.operator, r, layers), gate,
          index=rates.index(r))
    try:
      trials.append(ctx.cache.json("rate_trial", {"operator": config.operator, "rate": r,
                                                  "mutants": config.mutants,
                                                  "layers": layers}, trial))
    except (mutation.GateRejectedError, ValueError) as e:
      # Too few mutants pass the gate, or the rate selects no unit: not a candidate.
      trials.append(pipeline.failed_trial(r, e))
    t = trials[-1]
    ctx.say(f"  rate {r}: validation AUROC of LCR {t['validation_auroc']}"
            + (f" ({t['error']})" if "error" in t else ""))
  return trials


class ErrorDetection(Section):
  name = "detection"
  title = "Error detection: can its errors be caught?"

  def run(self, config, ctx) -> dict:
    ctx.say("error detection")
    clf, pred, wrong, layer = ctx.clf, ctx.predictions, ctx.wrong, ctx.layer
    sc = {h: {BASELINE_NAME: np.asarray(
        logit_scores.LOGIT_SCORES[logit_scores.BASELINE](ctx.logits[h]))} for h in _HALVES}
    extra = [n for n in config.scores if n != logit_scores.BASELINE]
    for h in _HALVES:
      sc[h].update(logit_scores.logit_scores(ctx.logits[h], names=extra))
    gate = pipeline.accuracy_gate(clf, ctx.splits["validation"])
    layers = pipeline.mutated_layers(clf)
    trials = _rate_trials(config, ctx, gate, layers)
    rate = pipeline.choose_rate(trials, operator=config.operator)
    lcr = ctx.cache.arrays(
        "lcr", {"operator": config.operator, "rate": rate, "mutants": config.mutants,
                "layers": layers},
        lambda: pipeline.lcr_scores(
            ctx.key, clf, {h: ctx.splits[h][0] for h in _HALVES}, pred,
            pipeline.Mutants(config.mutants, config.operator, rate, layers), gate)[0])
    ctx.say(f"  LCR over {config.mutants} {config.operator} mutants at rate {rate}")
    for h in _HALVES:
      sc[h]["LCR"] = lcr[h]
    combined = [BASELINE_NAME, "LCR"]
    trained_on = None
    if layer is not None:
      cond = ctx.cache.arrays("conductance", {"layer": layer, "train_limit": config.train_limit},
                              lambda: pipeline.conductance_features(clf, ctx.splits, layer,
                                                                    config.train_limit))
      feats = pipeline.detector_features(clf.num_classes, pred, cond)
      det, trained_on = pipeline.conductance_detector(ctx.key, feats, wrong)
      for h in _HALVES:
        sc[h]["conductance detector"] = det[h]
      combined.append("conductance detector")
      ctx.say(f"  conductance detector at {layer}, trained on {trained_on}")
    stack = {h: np.stack([sc[h][n] for n in combined], 1) for h in _HALVES}
    comb = detection.fit_combiner("lda", stack["validation"], wrong["validation"])
    for h in _HALVES:
      sc[h]["combination (LDA)"] = np.asarray(comb.scores(stack[h]))
    table = detection.score_table(sc["test"], wrong["test"], coverages=(config.coverage,))
    comparison = detection.compare_to_baseline(jax.random.fold_in(ctx.key, 99), sc["test"],
                                               wrong["test"], baseline=BASELINE_NAME)
    at_cov = {}
    for n in sc["test"]:
      t = coverage_threshold(sc["validation"][n], config.coverage)
      at_cov[n] = {"validation": _at_threshold(sc["validation"][n], wrong["validation"], t),
                   "test": _at_threshold(sc["test"][n], wrong["test"], t)}
    ctx.artifacts[self.name] = {"test_scores": sc["test"]}
    ctx.say(f"  done ({ctx.elapsed():.0f}s)")
    numbers = {"rate_trials": trials, "operator": config.operator, "rate": rate,
               "mutants": config.mutants, "mutated_layers": layers, "layer": layer,
               "detector_trained_on": trained_on, "combined": combined,
               "coverage": config.coverage, "table": table, "auroc_minus_msp": comparison,
               "at_coverage": at_cov,
               "note": "the combination is fitted on the validation half; so is every threshold"}
    if extra:
      numbers["logit_scores"] = extra
    return numbers

  def summary(self, d, ctx) -> list[tuple[str, str]]:
    t = d["table"]
    best = max((n for n in t if n != BASELINE_NAME), key=lambda n: t[n]["auroc"])
    gain = d["auroc_minus_msp"].get(best)
    cov = d["at_coverage"][BASELINE_NAME]["test"]
    accuracy = float(1 - ctx.wrong["test"].mean())
    return [("Can its errors be caught?",
             f"MSP (its own confidence) AUROC {t[BASELINE_NAME]['auroc']:.3f}; best other: "
             f"{best} {t[best]['auroc']:.3f} ({gain['difference']:+.3f} "
             f"[{gain['low']:+.3f}, {gain['high']:+.3f}] over MSP); MSP at "
             f"{d['coverage']:.0%} coverage: risk {cov['risk']:.3f} against "
             f"{1 - accuracy:.3f} overall")]

  def figure(self, d, ctx):
    import matplotlib.pyplot as plt
    from explicable_jax import viz
    scores, wrong = ctx.artifacts[self.name]["test_scores"], ctx.wrong["test"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    viz.roc_curves(scores, wrong, ax=axes[0], title="(test half, errors positive)")
    viz.risk_coverage_curves(scores, wrong, ax=axes[1], title="(test half)")
    return fig

  def report(self, page, d, figure) -> None:
    extra = d.get("logit_scores", [])
    page.paragraph(
        "Baseline: MSP, one minus the model's top softmax probability. "
        + (f"Other logit scores: {', '.join(extra)}. " if extra else "")
        + f"LCR: label change rate over {d['mutants']} {d['operator']} mutants at rate "
        f"{d['rate']} (chosen among {[t['rate'] for t in d['rate_trials']]} by the "
        "validation AUROC of a 10-mutant trial), mutants gated at 90% of the model's "
        "accuracy (Wang et al.). "
        + (f"Conductance detector: Wu et al.'s MLP on the conductance at {d['layer']}, "
           f"trained on {d['detector_trained_on']}. "
           if d["layer"] else "No split point: no conductance detector. ")
        + f"Combination: LDA on {', '.join(d['combined'])}, fitted on the validation half. "
        "Numbers on the test half; the interval is a paired bootstrap (1000 resamples).")
    cov = d["coverage"]
    header = ["score", "AUROC", "AUROC - MSP [95% CI]", "AURC", "E-AURC",
              f"threshold for {cov:.0%} (validation)", "test coverage", "test risk",
              "errors caught"]
    rows = []
    for n, r in d["table"].items():
      c = d["auroc_minus_msp"].get(n)
      a = d["at_coverage"][n]["test"]
      rows.append([n, r["auroc"], "(baseline)" if c is None else
                   f"{c['difference']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]",
                   r["aurc"], r["e_aurc"], a["threshold"], a["coverage"], a["risk"],
                   a["errors_caught"]])
    page.table(header, rows)
    page.figure(figure, "ROC and risk-coverage curves on the test half.")


SECTION = ErrorDetection()
