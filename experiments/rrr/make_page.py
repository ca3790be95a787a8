"""Writes ``experiments/results/rrr.md`` from ``page_template.md`` and the
committed outputs of ``run.py`` (``experiments/results/rrr/results.json``):
every measured number on the page is filled in here; the authors' numbers
(their notebooks' printed outputs, dtak/rrr) are typed in below.

    python experiments/rrr/make_page.py [--check]

Run from the repository root; ``--check`` writes nothing and fails when the
committed page differs from what the outputs give.
"""
import sys

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


def build(res) -> dict:
  s = res["summary"]
  n = len(res["seeds"])
  out = {}
  lines = ["| row | authors' notebook output (one run) | authors' protocol, ours "
           f"(mean ± sd, {n} seeds) | our defaults (mean ± sd, {n} seeds) |",
           "|---|---|---|---|"]
  for i, (label, part, key, theirs) in enumerate(ROWS, 1):
    cells = [ms(s.get(part, {}).get(p, {}).get(key)) for p in ("paper", "ours")]
    lines.append(f"| R{i}. {label} | {theirs or 'n/a'} | {cells[0]} | {cells[1]} |")
  out["COMPARISON"] = "\n".join(lines)

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
