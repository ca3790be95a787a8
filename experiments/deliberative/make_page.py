"""Writes ``experiments/results/deliberative.md`` from ``page_template.md``
and the committed outputs of ``run.py``
(``experiments/results/deliberative/results.json``): every measured number
on the page is filled in here; the paper's numbers are typed in below.

    python experiments/deliberative/make_page.py [--check]

Run from the repository root; ``--check`` writes nothing and fails when the
committed page differs from what the outputs give.
"""
import sys

from explicable_jax import stats

RESULTS = "experiments/results/deliberative/results.json"
TEMPLATE = "experiments/deliberative/page_template.md"
PAGE = "experiments/results/deliberative.md"

# The paper's ADE20K ablation (mean over r, percent), as quoted in issue 18's
# predecessor and in the old page; each row names the configuration of ours
# with the same difficulty and attribution under the original's forms and
# under our defaults.
PAPER = [
    ("hesitancy, gradient", "21.79", "hesitancy/gradient", "hesitancy/gradient"),
    ("entropy, gradient", "20.73", "entropy/gradient", "entropy/gradient"),
    ("hardness, gradient", "23.80", "hardness_original/gradient", "hardness_bce/gradient"),
    ("hardness, integrated gradients", "23.99",
     "hardness_original/integrated_gradients/input51", "hardness_bce/integrated_gradients"),
    ("hardness, gradient-Hessian", "24.26", "hardness_original/gradient_hessian/abs",
     "hardness_bce/gradient_hessian"),
]
# The paper's orderings as paired differences (same seed, same images):
# (label, paper's difference in IoU points, config a, config b) for the
# original's forms and for our defaults.
PAIRS = [
    ("hesitancy − entropy (gradient)", 21.79 - 20.73,
     ("hesitancy/gradient", "entropy/gradient"), ("hesitancy/gradient", "entropy/gradient")),
    ("hardness − hesitancy (gradient)", 23.80 - 21.79,
     ("hardness_original/gradient", "hesitancy/gradient"),
     ("hardness_bce/gradient", "hesitancy/gradient")),
    ("integrated gradients − gradient (hardness)", 23.99 - 23.80,
     ("hardness_original/integrated_gradients/input51", "hardness_original/gradient"),
     ("hardness_bce/integrated_gradients", "hardness_bce/gradient")),
    ("gradient-Hessian − gradient (hardness)", 24.26 - 23.80,
     ("hardness_original/gradient_hessian/abs", "hardness_original/gradient"),
     ("hardness_bce/gradient_hessian", "hardness_bce/gradient")),
    ("gradient-Hessian − integrated gradients (hardness)", 24.26 - 23.99,
     ("hardness_original/gradient_hessian/abs", "hardness_original/integrated_gradients/input51"),
     ("hardness_bce/gradient_hessian", "hardness_bce/integrated_gradients")),
]
RS = ("0.1", "0.2", "0.3", "0.4", "0.5")
ORDER = ["hesitancy", "entropy", "hardness_bce", "hardness_original"]


def paired(res, sel, a, b):
  """Per seed: config a's IoU minus config b's (each averaged over r), in
  points; returns (mean, sd, values)."""
  import numpy as np
  d = []
  for seed in map(str, res["seeds"]):
    r = res["per_seed"][seed]["results"][sel]
    d.append(100 * (np.mean([r[a][x]["iou"] for x in RS]) - np.mean([r[b][x]["iou"] for x in RS])))
  return float(np.mean(d)), (float(np.std(d, ddof=1)) if len(d) > 1 else None), d


ALPHA = 0.05


def _signed(v):
  return ("+" if v >= 0 else "−") + f"{abs(v):.2f}"


def pair_test(res, sel, a, b):
  """Per-seed paired differences (IoU points) of config a minus b and their
  t-test over the seeds (``stats.t_test_over_seeds``)."""
  return stats.t_test_over_seeds(paired(res, sel, a, b)[2])


def pair_cell(t):
  txt = _signed(t["mean"]) + ("" if t["sd"] is None else f" ± {t['sd']:.2f}")
  if t["p_value"] is None:
    return txt
  return txt + f" (p = {t['p_value']:.2g}" + (", resolved)" if t["p_value"] < ALPHA else ")")


def verdict(t, paper):
  if t["p_value"] is None or not t["p_value"] < ALPHA:
    return "not resolved"
  return "agrees" if (t["mean"] > 0) == (paper > 0) else "differs"


COLUMNS = (("hardest", 0, "original's forms, hardest"), ("hardest", 1, "our defaults, hardest"),
           ("random", 0, "original's forms, random"), ("random", 1, "our defaults, random"))


def claims(res) -> str:
  """The page's sentences, each computed from the paired table and the
  summaries: a paired difference is "agrees" / "differs" only when its
  t-test over the seeds gives p < 0.05."""
  s = res["summary"]
  n = len(res["seeds"])
  out = []
  # Every configuration against random regions, paired by seed.
  for sel in ("hardest", "random"):
    names = [k for k in s[sel] if k != "random regions"]
    tests = {k: pair_test(res, sel, k, "random regions") for k in names}
    every = all(min(paired(res, sel, k, "random regions")[2]) > 0 for k in names)
    ious = [100 * s[sel][k]["iou"]["mean_over_r"]["mean"] for k in names]
    worst = max(t["p_value"] for t in tests.values())
    out.append(
        f"* **{sel.capitalize()} images: every configuration against random regions of the same "
        f"area** (paired by seed, IoU points): IoU {min(ious):.1f}-{max(ious):.1f}% against "
        f"{100 * s[sel]['random regions']['iou']['mean_over_r']['mean']:.1f}%; "
        + ("above in every seed" if every else "not above in every seed")
        + f", t-test over the {n} seeds p <= {worst:.2g} for every configuration"
        + (" (all below 0.05)." if worst < ALPHA else "."))
  prec = [s["hardest"][k]["precision"]["mean_over_r"]["mean"] for k in s["hardest"]]
  unshared = s["hardest"]["entropy/gradient"]["has_unshared_part"]["mean_over_r"]["mean"]
  if min(prec) == max(prec) == 1.0:
    out.append("* **On the hardest images precision cannot rank anything.** "
               + ("None" if unshared == 0 else f"{100 * unshared:.1f}%")
               + " of their scored pairs shows a part the pair does not share (Result 1), so precision is 100% for every configuration and for random "
               "regions alike; IoU and recall still separate the maps from chance.")
  for label, paper, orig, ours in PAIRS:
    tests = [(name, pair_test(res, sel, *(orig, ours)[i])) for sel, i, name in COLUMNS]
    groups = {}
    for name, t in tests:
      groups.setdefault(verdict(t, paper), []).append(f"{name} {pair_cell(t)}")
    out.append(f"* **{label}** (paper +{paper:.2f}): "
               + "; ".join(f"**{v}**: {', '.join(c)}" for v, c in groups.items()) + ".")
  acc = res["test_accuracy"]
  drops = [(sd_, acc[sd_]["plain"], acc[sd_]["hardness_original"]) for sd_ in acc
           if acc[sd_]["plain"] - acc[sd_]["hardness_original"] > 0.02]
  if drops:
    out.append("* Test accuracy with the original's hardness loss against the plain model of "
               "the same seed (one test set per seed, no paired test): "
               + "; ".join(f"seed {sd_}: {o:.3f} against {p:.3f}" for sd_, p, o in drops) + ".")
  so = "hardness_original/gradient_hessian"
  t_abs = pair_test(res, "random", so, so + "/abs")
  t_grad = pair_test(res, "random", so, "hardness_original/gradient")
  lowest = min(s["random"], key=lambda k: s["random"][k]["iou"]["mean_over_r"]["mean"]
               if k != "random regions" else 1e9)
  out.append(
      f"* **The signed second-order term with the original's hardness score, random images** "
      f"(paired by seed): {so} minus its absolute form {pair_cell(t_abs)} "
      f"({verdict(t_abs, -1).replace('agrees', 'lower').replace('differs', 'higher')}), minus "
      f"the gradient {pair_cell(t_grad)} "
      f"({verdict(t_grad, -1).replace('agrees', 'lower').replace('differs', 'higher')}); the "
      f"lowest IoU of all configurations is {lowest}'s "
      f"({100 * s['random'][lowest]['iou']['mean_over_r']['mean']:.2f}%).")
  agree = [label for label, paper, orig, ours in PAIRS
           if any(verdict(pair_test(res, sel, *(orig, ours)[i]), paper) == "agrees"
                  for sel, i, _ in COLUMNS)]
  differ = [label for label, paper, orig, ours in PAIRS
            if any(verdict(pair_test(res, sel, *(orig, ours)[i]), paper) == "differs"
                   for sel, i, _ in COLUMNS)]
  out.append(f"* **In short** (t-test over {n} seeds, 5% level): the paper's ordering agrees in "
             f"at least one column for {', '.join(agree) or 'no pair'}; it differs in at least "
             f"one column for {', '.join(differ) or 'no pair'}; every other cell is not "
             "resolved. The absolute IoUs are of the paper's size (about 20%) but come from "
             "another data set and are not comparable.")
  return "\n".join(out)
ATTR = ["gradient", "integrated_gradients", "integrated_gradients/input51",
        "gradient_hessian", "gradient_hessian/abs"]


def cell(row, k="iou", scale=100.0, digits=2):
  s = row[k]["mean_over_r"]
  if s["std"] is None:
    return f"{scale * s['mean']:.{digits}f}"
  return f"{scale * s['mean']:.{digits}f} ± {scale * s['std']:.{digits}f}"


def table(summary_sel) -> str:
  lines = ["| difficulty / attribution | IoU, % | precision, % | recall, % | IoU at r=10%, % "
           "| scored pairs per seed |", "|---|---|---|---|---|---|"]
  names = [f"{d}/{a}" for d in ORDER for a in ATTR] + ["random regions"]
  for name in names:
    row = summary_sel[name]
    lines.append(f"| {name} | {cell(row)} | {cell(row, 'precision')} | {cell(row, 'recall')} "
                 f"| {100 * row['iou']['at_r']['0.1']:.2f} | "
                 f"{row['n']['mean_over_r']['mean']:.0f} |")
  return "\n".join(lines)


def build(res) -> dict:
  s = res["summary"]
  out = {"HARDEST": table(s["hardest"]), "RANDOM": table(s["random"])}
  lines = ["| score, attribution | paper, ADE20K (VGG-16) | original's forms, hardest images "
           "| our defaults, hardest images | original's forms, random images | our defaults, "
           "random images |", "|---|---|---|---|---|---|"]
  for label, paper, orig, ours in PAPER:
    lines.append(f"| {label} | {paper} | {cell(s['hardest'][orig])} | "
                 f"{cell(s['hardest'][ours])} | {cell(s['random'][orig])} | "
                 f"{cell(s['random'][ours])} |")
  out["PAPER"] = "\n".join(lines)
  lines = ["| paired difference, IoU points | paper, ADE20K | original's forms, hardest | "
           "our defaults, hardest | original's forms, random | our defaults, random |",
           "|---|---|---|---|---|---|"]
  for label, paper, orig, ours in PAIRS:
    cells = [pair_cell(pair_test(res, sel, *cfg)) for sel in ("hardest", "random")
             for cfg in (orig, ours)]
    lines.append(f"| {label} | +{paper:.2f} | {cells[0]} | {cells[1]} | {cells[2]} | "
                 f"{cells[3]} |")
  out["PAIRED"] = "\n".join(lines)
  acc = res["test_accuracy"]
  lines = ["| model | " + " | ".join(f"seed {x}" for x in res["seeds"]) + " |",
           "|---|" + "---|" * len(res["seeds"])]
  for name in ("plain", "hardness_bce", "hardness_original"):
    lines.append(f"| {name} | " + " | ".join(f"{acc[str(x)][name]:.4f}" for x in res["seeds"])
                 + " |")
  out["ACCURACY"] = "\n".join(lines)
  for sel in ("hardest", "random"):
    u = s[sel]["entropy/gradient"]["has_unshared_part"]["mean_over_r"]["mean"]
    out[f"UNSHARED_{sel.upper()}"] = f"{100 * u:.1f}%"
  out["CLAIMS"] = claims(res)
  out["SEEDS"] = ", ".join(str(x) for x in res["seeds"])
  out["DATE"] = res["date"]
  out["MACHINE"] = res["machine"]
  out["WALL"] = f"{res['wall_seconds_this_invocation']:.0f}"
  return out


def main(argv) -> None:
  from explicable_jax.app import reporting
  reporting.make_page(TEMPLATE, PAGE, RESULTS, build, argv)


if __name__ == "__main__":
  main(sys.argv[1:])
