"""Writes ``experiments/results/rrr.md`` from ``page_template.md`` and the
committed outputs of ``run.py`` (``experiments/results/rrr/results.json``):
every measured number on the page is filled in here; the authors' numbers
(their notebooks' printed outputs, dtak/rrr) are typed in below.

    python experiments/rrr/make_page.py [--check]

Run from the repository root; ``--check`` writes nothing and fails when the
committed page differs from what the outputs give.
"""
import sys

import numpy as np

from explicable_jax import stats

RESULTS = "experiments/results/rrr/results.json"
TEMPLATE = "experiments/rrr/page_template.md"
PAGE = "experiments/results/rrr.md"

# (row label, part, key of the summary, the authors' notebook output or None)
ROWS = [
    ("Decoy MNIST, no annotation", "decoy_mnist", "no annotation / test_accuracy", "0.5155"),
    ("Decoy MNIST, swatch annotated (lambda 1e3)", "decoy_mnist",
     "swatch annotated, lambda 1e3 / test_accuracy", "0.9607"),
    ("the same MLP on clean MNIST", "decoy_mnist",
     "the same MLP on clean MNIST / test_accuracy", "0.9611"),
    ("Toy Colors, plain", "toy_colors", "plain / test_accuracy", "0.9998"),
    ("Toy Colors, penalise rule 1 (corners), lambda 1e3", "toy_colors",
     "penalise rule 1 (corners), lambda 1e3 / test_accuracy", "1.0"),
    ("Toy Colors, penalise rule 2 (top middle), lambda 1e3", "toy_colors",
     "penalise rule 2 (top middle), lambda 1e3 / test_accuracy", "1.0"),
    ("Toy Colors, penalise both rules, lambda 1e3", "toy_colors",
     "penalise both rules, lambda 1e3 / test_accuracy", None),
    ("Toy Colors, penalise both rules, lambda 1e6", "toy_colors",
     "penalise both rules, lambda 1e6 / test_accuracy", "0.5365"),
    ("find-another-explanation, model 0 (plain)", "toy_colors",
     "find another explanation / models / 0 / test_accuracy", "0.9998"),
    ("find-another-explanation, model 1 (lambda 1e3)", "toy_colors",
     "find another explanation / models / 1 / test_accuracy", "0.9915"),
    ("find-another-explanation, model 2 (lambda 1e6)", "toy_colors",
     "find another explanation / models / 2 / test_accuracy", "0.5442"),
    ("20 Newsgroups, atheism vs christian", "newsgroups", "plain / test_accuracy", "0.9470"),
]
RULE_ROWS = [
    ("plain", "plain"),
    ("penalise rule 1 (corners), lambda 1e3", "penalise rule 1 (corners), lambda 1e3"),
    ("penalise rule 2 (top middle), lambda 1e3", "penalise rule 2 (top middle), lambda 1e3"),
    ("penalise both rules, lambda 1e3", "penalise both rules, lambda 1e3"),
    ("penalise both rules, lambda 1e6", "penalise both rules, lambda 1e6"),
    ("find-another-explanation model 0", "find another explanation / models / 0"),
    ("find-another-explanation model 1", "find another explanation / models / 1"),
    ("find-another-explanation model 2", "find another explanation / models / 2"),
]


def ms(stat, digits=4):
  if stat is None:
    return "not run"
  if stat["std"] is None:
    return f"{stat['mean']:.{digits}f} (1 run)"
  return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


ALPHA = 0.05
PROTOCOL_NAMES = {"paper": "authors' protocol", "ours": "our defaults"}


def vs_their_run(stat, theirs):
  """Our seeds against the authors' single run: a one-sample t-test of our
  values minus their number (their run's own noise is not counted)."""
  return stats.t_test_over_seeds(np.asarray(stat["values"]) - float(theirs))


def vs_protocol(s, part, key):
  """Our defaults minus the authors' protocol, paired by seed (same data)."""
  a, b = s[part]["ours"].get(key), s[part]["paper"].get(key)
  if a is None or b is None:
    return None
  return stats.t_test_over_seeds(np.asarray(a["values"]) - np.asarray(b["values"]))


def cell(t, digits=4):
  if t is None:
    return "—"
  txt = f"{t['mean']:+.{digits}f}"
  return txt + ("" if t["p_value"] is None else f" (p = {t['p_value']:.2g})")


def word(t, higher="above", lower="below"):
  return stats.verdict(None if t is None else t["p_value"], 0.0 if t is None else t["mean"],
                       higher=higher, lower=lower)


def _lam(v):
  e = int(round(np.log10(v)))
  return f"1e{e}" if v == 10 ** e and e > 1 else f"{v:g}"


def claims(res) -> str:
  """The sentences under "What agrees and what does not", computed from the
  tables: each comparison names what it pairs and its test."""
  s = res["summary"]
  n = len(res["seeds"])
  out = []
  groups = {}
  for i, (label, part, key, theirs) in enumerate(ROWS, 1):
    stat = s.get(part, {}).get("paper", {}).get(key)
    if theirs is None or stat is None:
      continue
    t = vs_their_run(stat, theirs)
    groups.setdefault(word(t, "above their run", "below their run"), []).append(
        f"R{i} {stat['mean']:.4f} against {theirs}, {cell(t)}")
  out.append(f"* **The authors' protocol against their notebooks' single runs** (test accuracy, "
             f"our {n} seeds minus their number, one-sample t-test over the seeds; their run's "
             "own noise is not counted, so a detectable difference can still be within the "
             "spread of their runs): "
             + "; ".join(f"**{k}**: {', '.join(v)}" for k, v in groups.items()) + ".")
  groups = {}
  for i, (label, part, key, _) in enumerate(ROWS, 1):
    t = vs_protocol(s, part, key)
    if t is not None:
      groups.setdefault(word(t, "higher under our defaults", "lower under our defaults"), []).append(
          f"R{i} {cell(t)}")
  out.append(f"* **Our defaults against the authors' protocol** (test accuracy, paired by seed, "
             f"t-test over the {n} seeds): "
             + "; ".join(f"**{k}**: {', '.join(v)}" for k, v in groups.items()) + ".")
  t = s["toy_colors"]
  rule = lambda p, k: (t[p][k + " / rule1"]["mean"], t[p][k + " / rule2"]["mean"])
  for p, name in (("paper", "authors' protocol"), ("ours", "our defaults")):
    r1, r2 = rule(p, "penalise rule 1 (corners), lambda 1e3"), rule(
        p, "penalise rule 2 (top middle), lambda 1e3")
    both = rule(p, "penalise both rules, lambda 1e6")
    out.append(f"* **Toy Colors rule scores, {name}** (rule-score table, means over seeds): "
               f"penalising the corners gives rule 1 / rule 2 scores {r1[0]:.3f} / {r1[1]:.3f}, "
               f"penalising the top middle {r2[0]:.3f} / {r2[1]:.3f}, both at lambda 1e6 "
               f"{both[0]:.3f} / {both[1]:.3f} with mean top probability "
               f"{t[p]['penalise both rules, lambda 1e6 / mean_max_probability']['mean']:.3f}.")
  sds = [(v["std"], f"R{i}, " + PROTOCOL_NAMES[p]) for i, (label, part, key, _) in enumerate(ROWS, 1)
         for p in ("paper", "ours") if (v := s.get(part, {}).get(p, {}).get(key))
         and v["std"] is not None]
  big = max(sds)
  out.append(f"* **Seeds matter at the second decimal**: the largest standard deviation over "
             f"the {n} seeds is {big[0]:.3f} ({big[1]}), so a single run's second decimal is "
             "not a result; every row is a mean over seeds.")
  first = str(res["seeds"][0])
  for p, name in (("paper", "authors' protocol"), ("ours", "our defaults")):
    sweep = res["per_seed"]["toy_colors"][p][first]["lambda sweep (corners)"]
    low = [f"{_lam(x['lambda'])} ({x['test_accuracy']:.3f})" for x in sweep
           if x["test_accuracy"] < 0.9]
    switch = next((x["lambda"] for x in sweep if x["rule2"] > x["rule1"]), None)
    out.append(f"* **Lambda sweep, {name}** (seed {first}, one run per cell, no test): the rule 2 "
               f"score first exceeds rule 1 at lambda {_lam(switch)}" if switch is not None else
               f"* **Lambda sweep, {name}** (seed {first}, one run per cell, no test): rule 2 "
               "never exceeds rule 1")
    out[-1] += ("; test accuracy below 0.9 at lambda " + ", ".join(low) if low else
                "; test accuracy stays at or above 0.9 at every lambda") + "."
  cert = s.get("certainty", {}).get("ours")
  if cert:
    eps = res["per_seed"]["certainty"]["ours"][first]["eps"]
    parts = []
    for i, e in enumerate(eps):
      a = np.asarray(cert[f"certainty-regularised CNN / accuracy_under_fgsm / {i}"]["values"])
      b = np.asarray(cert[f"plain CNN / accuracy_under_fgsm / {i}"]["values"])
      tt = stats.t_test_over_seeds(a - b)
      parts.append(f"epsilon {e:g}: {cell(tt, 3)} {word(tt)}")
    out.append("* **Certainty regularisation** (our defaults only; certainty table; the "
               "regularised CNN minus the plain one, paired by seed, t-test over the seeds): "
               + "; ".join(parts) + ". The paper's network for this figure is not in its "
               "code, so there is no number of theirs to set beside ours.")
  return "\n".join(out)


def build(res) -> dict:
  s = res["summary"]
  n = len(res["seeds"])
  out = {}
  lines = ["| row | authors' notebook output (one run) | authors' protocol, ours "
           f"(mean ± sd, {n} seeds) | ours minus their run (t-test p) | our defaults (mean ± "
           f"sd, {n} seeds) | our defaults minus authors' protocol, paired by seed (p) |",
           "|---|---|---|---|---|---|"]
  for i, (label, part, key, theirs) in enumerate(ROWS, 1):
    cells = [ms(s.get(part, {}).get(p, {}).get(key)) for p in ("paper", "ours")]
    stat = s.get(part, {}).get("paper", {}).get(key)
    mine = cell(vs_their_run(stat, theirs)) if theirs and stat else "—"
    lines.append(f"| R{i}. {label} | {theirs or 'n/a'} | {cells[0]} | {mine} | {cells[1]} | "
                 f"{cell(vs_protocol(s, part, key))} |")
  out["COMPARISON"] = "\n".join(lines)
  out["CLAIMS"] = claims(res)

  lines = ["| Toy Colors model | authors' protocol: rule 1 / rule 2 score | our defaults: "
           "rule 1 / rule 2 score | mean top probability: authors' protocol / our defaults |",
           "|---|---|---|---|"]
  for label, key in RULE_ROWS:
    cells = []
    for p in ("paper", "ours"):
      t = s["toy_colors"][p]
      cells.append(f"{t[key + ' / rule1']['mean']:.3f} / {t[key + ' / rule2']['mean']:.3f}")
    probs = [s["toy_colors"][p].get(key + " / mean_max_probability") for p in ("paper", "ours")]
    prob = ("—" if probs[0] is None else
            f"{probs[0]['mean']:.3f} / {probs[1]['mean']:.3f}")
    lines.append(f"| {label} | {cells[0]} | {cells[1]} | {prob} |")
  out["RULES"] = "\n".join(lines)

  fae = []
  for p in ("paper", "ours"):
    t = s["toy_colors"][p]
    fae.append(" / ".join(f"{t[f'find another explanation / models / {k} / annotated_fraction']['mean']:.3f}"
                          for k in range(3)))
    empty = max(t[f"find another explanation / models / {k} / empty_mask_fraction"]["mean"]
                for k in range(3))
    fae[-1] += f" (largest share of empty masks: {empty:.4f})"
  out["FAE_ANNOTATED"] = (f"authors' protocol {fae[0]}; our defaults {fae[1]}")

  first = str(res["seeds"][0])
  lines = ["| lambda (original units) | " + " | ".join(
      f"{s_['lambda']:g}" for s_ in res["per_seed"]["toy_colors"]["paper"][first][
          "lambda sweep (corners)"]) + " |"]
  lines.append("|---|" + "---|" * (len(lines[0].split("|")) - 3))
  for p, name in (("paper", "authors' protocol"), ("ours", "our defaults")):
    sweep = res["per_seed"]["toy_colors"][p][first]["lambda sweep (corners)"]
    for k, lab in (("test_accuracy", "test accuracy"), ("rule1", "rule 1 score"),
                   ("rule2", "rule 2 score")):
      lines.append(f"| {name}: {lab} | " + " | ".join(f"{x[k]:.3f}" for x in sweep) + " |")
  out["SWEEP"] = "\n".join(lines)

  cert = s.get("certainty", {}).get("ours")
  if cert:
    eps = res["per_seed"]["certainty"]["ours"][first]["eps"]
    lines = ["| epsilon | " + " | ".join(f"{e:g}" for e in eps) + " |",
             "|---|" + "---|" * len(eps)]
    for name in ("plain CNN", "certainty-regularised CNN"):
      lines.append(f"| {name} | " + " | ".join(
          ms(cert[f"{name} / accuracy_under_fgsm / {i}"], 3) for i in range(len(eps))) + " |")
    out["CERTAINTY"] = "\n".join(lines)

  words = res["per_seed"]["newsgroups"]["paper"][first]["plain"]["explanations"]
  out["WORDS"] = "\n".join(
      f"* {w['label']}: " + ", ".join(f"`{t}`" for t, _ in w["top_words"]) for w in words[:4])
  vocab = {p: res["per_seed"]["newsgroups"][p][first]["plain"]["vocabulary"]
           for p in ("paper", "ours")}
  out["VOCAB"] = f"{vocab['paper']} words (authors' protocol), {vocab['ours']} (ours)"
  out["SEEDS"] = ", ".join(str(x) for x in res["seeds"])
  out["DATE"] = res["date"]
  out["MACHINE"] = res["machine"]
  out["MODEL_SECONDS"] = f"{res['model_seconds_total']:.0f}"
  return out


def main(argv) -> None:
  from explicable_jax.app import reporting
  reporting.make_page(TEMPLATE, PAGE, RESULTS, build, argv)


if __name__ == "__main__":
  main(sys.argv[1:])
