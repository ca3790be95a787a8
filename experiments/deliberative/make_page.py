"""Writes ``experiments/results/deliberative.md`` from ``page_template.md``
and the committed outputs of ``run.py``
(``experiments/results/deliberative/results.json``): every measured number
on the page is filled in here; the paper's numbers are typed in below.

    python experiments/deliberative/make_page.py [--check]

Run from the repository root; ``--check`` writes nothing and fails when the
committed page differs from what the outputs give.
"""
import sys

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


def pair_cell(m, sd):
  sign = "+" if m >= 0 else "−"
  txt = f"{sign}{abs(m):.2f}" + ("" if sd is None else f" ± {sd:.2f}")
  return txt + (" (resolved)" if sd is not None and abs(m) > 2 * sd else "")
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
    cells = [pair_cell(*paired(res, sel, *cfg)[:2]) for sel in ("hardest", "random")
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
