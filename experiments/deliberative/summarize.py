"""Prints the tables of experiments/results/deliberative.md from the runs' results.json.

    python experiments/deliberative/summarize.py experiments/results/deliberative \
        experiments/results/deliberative/random_images

Per run: P / R / IoU at each r, mean precision and recall over r (percent)
and the number of scored (image, pair) items; then the comparison with the
paper's ADE20K averages quoted in the issue.
"""
import json
import os
import sys

RS = ["0.1", "0.2", "0.3", "0.4", "0.5"]
ORDER = ["hesitancy/gradient", "hesitancy/integrated_gradients", "hesitancy/gradient_hessian",
         "entropy/gradient", "entropy/integrated_gradients", "entropy/gradient_hessian",
         "hardness/gradient", "hardness/integrated_gradients", "hardness/gradient_hessian",
         "random regions"]
PAPER = [("hesitancy (gradient)", "21.79", "hesitancy/gradient"),
         ("entropy (gradient)", "20.73", "entropy/gradient"),
         ("hardness (gradient)", "23.80", "hardness/gradient"),
         ("gradient (hardness)", "23.80", "hardness/gradient"),
         ("integrated gradients (hardness)", "23.99", "hardness/integrated_gradients"),
         ("gradient-Hessian (hardness)", "24.26", "hardness/gradient_hessian")]


def mean(res, key, metric):
  return 100 * sum(res[key][r][metric] for r in RS) / len(RS)


def table(res) -> str:
  lines = ["| difficulty / attribution | "
           + " | ".join(f"r={int(float(r) * 100)}% P / R / IoU" for r in RS)
           + " | mean P | mean R | n pairs |", "|" + "---|" * 9]
  for k in ORDER:
    cells = [f"{res[k][r]['precision']:.3f} / {res[k][r]['recall']:.3f} / {res[k][r]['iou']:.3f}"
             for r in RS]
    lines.append(f"| {k} | " + " | ".join(cells)
                 + f" | {mean(res, k, 'precision'):.1f} | {mean(res, k, 'recall'):.1f} "
                   f"| {res[k][RS[0]]['n']} |")
  return "\n".join(lines)


def main(folders) -> None:
  runs = [json.load(open(os.path.join(f, "results.json")))["results"] for f in folders]
  for f, res in zip(folders, runs):
    print(f"## {f}\n\n{table(res)}\n")
  head = " | ".join(f"ours, {os.path.basename(os.path.normpath(f))}: P / R" for f in folders)
  print(f"| score / attribution | paper, ADE20K | {head} |\n|" + "---|" * (2 + len(folders)))
  for name, paper, k in PAPER:
    cells = " | ".join(f"{mean(r, k, 'precision'):.1f} / {mean(r, k, 'recall'):.1f}" for r in runs)
    print(f"| {name} | {paper} | {cells} |")


if __name__ == "__main__":
  main(sys.argv[1:])
