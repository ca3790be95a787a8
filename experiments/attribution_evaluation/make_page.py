"""Writes ``experiments/results/attribution_evaluation.md`` from
``page_template.md`` and the committed outputs of ``run.py``
(``experiments/results/attribution_evaluation/{run,resnet20,decoy,rrr}.json``):
every number and every sentence of the page is computed here from them.

    python experiments/attribution_evaluation/make_page.py [--check]

Run from the repository root; ``--check`` writes nothing and fails when the
committed page differs from what the outputs give.

A comparison is a paired interval over the same images (mean difference +-
1.96 standard errors); one that covers 0 reads "no detectable difference".
"""
from __future__ import annotations

import json
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from explicable_jax import stats  # noqa: E402
from explicable_jax.app import attributions, reporting  # noqa: E402
from explicable_jax.app.audit import faithfulness as F  # noqa: E402

FOLDER = "experiments/results/attribution_evaluation"
RESULTS = f"{FOLDER}/run.json"
TEMPLATE = "experiments/attribution_evaluation/page_template.md"
PAGE = "experiments/results/attribution_evaluation.md"
MODELS = {"resnet20": "ResNet-20 (CIFAR-10)", "decoy": "decoy-trained MLP (Decoy MNIST)",
          "rrr": "RRR-trained MLP (Decoy MNIST)"}
FAITHFULNESS = ("deletion AUC", "insertion AUC", "faithfulness correlation", "infidelity")


def load_models(folder: str = FOLDER) -> dict[str, dict]:
  out = {}
  for name in MODELS:
    path = os.path.join(ROOT, folder, f"{name}.json")
    if os.path.exists(path):
      with open(path) as f:
        out[name] = json.load(f)
  return out


def _methods(res: dict) -> list[str]:
  return [m for m in res["methods"] if m != F.RANDOM]


def _join(names: list[str]) -> str:
  names = [f"{n}" for n in names]
  if not names:
    return "none"
  return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _ci(c: dict, signed: bool = False) -> str:
  f = "{:+.3g}" if signed else "{:.3g}"
  return f"{f.format(c['mean'])} [{f.format(c['low'])}, {f.format(c['high'])}]"


def sanity_sentence(label: str, res: dict) -> str:
  """Which methods pass the randomisation check, from the table's verdicts."""
  rows = res["methods"]
  passed = [m for m in _methods(res) if rows[m]["passes"]]
  failed = [m for m in _methods(res) if not rows[m]["passes"]]
  rnd = rows.get(F.RANDOM)
  s = (f"On the {label}, {len(passed)} of {len(passed) + len(failed)} methods pass the "
       f"randomisation check (upper 95% bound of the Spearman correlation with the fully "
       f"randomised model's map below {res['threshold']}): {_join(passed)}")
  if failed:
    worst = max(failed, key=lambda m: rows[m]["intervals"]["randomisation"]["mean"])
    s += (f"; {_join(failed)} fail (the highest: {worst}, "
          f"{_ci(rows[worst]['intervals']['randomisation'])})")
  if rnd is not None:
    s += (f". The random ranking, which ignores the model, keeps "
          f"{rnd['intervals']['randomisation']['mean']:.3f} and fails, as it must")
  return s + "."


def best_sentence(label: str, res: dict, metric: str) -> str:
  """The best method by ``metric`` and every method tied with it (its
  paired interval covers 0); "no detectable difference" between ties."""
  rows = res["methods"]
  better = F.METRICS[metric][1]
  names = [m for m in _methods(res) if rows[m]["intervals"][metric]["n"]]
  sign = 1 if better == "higher" else -1
  best = max(names, key=lambda m: sign * rows[m]["intervals"][metric]["mean"])
  tied = []
  for m in names:
    if m == best:
      continue
    d = F.paired_interval(rows[m]["per_image"][metric], rows[best]["per_image"][metric])
    if d["low"] <= 0 <= d["high"]:
      tied.append(m)
  s = (f"By {metric} ({'higher' if better == 'higher' else 'lower'} is more faithful) the "
       f"best on the {label} is {best}, {_ci(rows[best]['intervals'][metric])}")
  if tied:
    s += f"; {stats.NO_DIFFERENCE} from it for {_join(tied)} (paired intervals cover 0)"
  else:
    s += "; every other method is detectably worse (paired intervals exclude 0)"
  if F.RANDOM in rows and metric in ("deletion AUC", "insertion AUC"):
    beat = []
    for m in names:
      d = F.paired_interval(rows[m]["per_image"][metric], rows[F.RANDOM]["per_image"][metric])
      if (d["high"] < 0) if better == "lower" else (d["low"] > 0):
        beat.append(m)
    s += (f". {len(beat)} of {len(names)} methods beat the random ranking "
          f"({_ci(rows[F.RANDOM]['intervals'][metric])})")
    if not beat and metric == "deletion AUC":
      s += (": scattered pixels set to black take the image off the data the model was "
            "trained on, so random deletion lowers the score at least as fast as deleting "
            "the pixels any map ranks first")
  return s + "."


def identical_sentence(label: str, res: dict) -> str | None:
  """Methods whose every per-image value of every metric agrees to within 0.001."""
  rows, names = res["methods"], _methods(res)
  pairs = []
  for i, a in enumerate(names):
    for b in names[i + 1:]:
      if all(np.allclose(rows[a]["per_image"][m], rows[b]["per_image"][m], atol=1e-3,
                         equal_nan=True) for m in rows[a]["per_image"]):
        pairs.append(f"{a} and {b}")
  if not pairs:
    return None
  return (f"On the {label}, {'; '.join(pairs)} give the same value, to within 0.001, on "
          "every image and every metric: after a global average pool and a linear layer the gradient at "
          "the layer is the same at every position, so the class map sum_c a_c dS/da_c is "
          "Grad-CAM's weighted sum of the feature maps, up to the ReLU and the floor.")


def localisation_rows(decoy: dict, rrr: dict, area: float) -> tuple[str, list[str]]:
  """The relevance mass on the swatch of each method on both models, their
  paired difference, and the verdict; the sentences."""
  lines = ["| method | relevance mass, decoy-trained | relevance mass, RRR-trained | "
           "decoy - RRR (paired) | pointing game, decoy / RRR | localises the decoy? |",
           "|---|---|---|---|---|---|"]
  found, sentences = [], []
  for m in decoy["methods"]:
    a, b = decoy["methods"][m], rrr["methods"][m]
    d = F.paired_interval(a["per_image"]["relevance mass"], b["per_image"]["relevance mass"])
    ra = a["intervals"]["relevance mass"]
    yes = m != F.RANDOM and d["low"] > 0 and ra["low"] > area
    if yes:
      found.append(m)
    verdict = ("yes" if yes else "reference" if m == F.RANDOM else
               stats.NO_DIFFERENCE if d["low"] <= 0 <= d["high"] else "no")
    lines.append(f"| {m} | {_ci(ra)} | {_ci(b['intervals']['relevance mass'])} | "
                 f"{_ci(d, signed=True)} | {a['intervals']['pointing game']['mean']:.2f} / "
                 f"{b['intervals']['pointing game']['mean']:.2f} | {verdict} |")
  others = [m for m in decoy["methods"] if m not in found and m != F.RANDOM]
  sentences.append(
      f"The swatch covers {area:.1%} of each image (what a uniform map puts on it). "
      f"{len(found)} of {len(found) + len(others)} methods localise the decoy: on the "
      f"decoy-trained model they put detectably more relevance on the swatch than a uniform "
      f"map and than on the RRR-trained model (paired interval above 0): {_join(found)}"
      + (f"; {_join(others)} do not" if others else "") + ".")
  return "\n".join(lines), sentences


def build(run: dict) -> dict[str, str]:
  res = load_models()
  out = {"DATE": run["date"], "MACHINE": run["machine"], "COMMAND": run["command"],
         "IMAGES": str(run["images"]), "EPOCHS": str(run["epochs"]), "SEED": str(run["seed"])}
  seconds = {k: sum(m["seconds"] for m in r["methods"].values()) for k, r in res.items()}
  train = sum(res[k]["model_meta"].get("train_seconds", 0) for k in ("decoy", "rrr")
              if k in res)
  out["WALL"] = (f"{sum(seconds.values()) + train:.0f} s in all: "
                 + ", ".join(f"{MODELS[k]} {v:.0f} s" for k, v in seconds.items())
                 + f", training the two MLPs {train:.0f} s; the last invocation of run.py "
                 f"took {run['wall_seconds']:.0f} s")
  r20 = res["resnet20"]
  out["RESNET_DATA"] = r20["data"]
  out["RESNET_LAYER"] = r20["layer"]
  out["RESNET_ACCURACY"] = f"{r20['accuracy']:.3f}"
  out["DECOY_ACCURACY"] = f"{res['decoy']['model_meta']['test_accuracy']:.4f}"
  out["RRR_ACCURACY"] = f"{res['rrr']['model_meta']['test_accuracy']:.4f}"
  out["DECOY_LAYER"] = str(res["decoy"]["layer"])
  out["METRICS"] = "\n".join(f"| {m} | {'lower' if b == 'lower' else 'higher'} | "
                             f"{r20['metric_descriptions'].get(m) or res['decoy']['metric_descriptions'][m]} |"
                             for m, b in res["decoy"]["better"].items())
  for key in MODELS:
    out[f"TABLE_{key.upper()}"] = attributions.markdown_table(res[key]).rstrip("\n")
  sentences = []
  for key, label in MODELS.items():
    sentences.append(sanity_sentence(label, res[key]))
    for metric in FAITHFULNESS:
      sentences.append(best_sentence(label, res[key], metric))
  same = [identical_sentence(label, res[key]) for key, label in MODELS.items()]
  sentences += [s for s in same if s]
  out["SANITY"] = "\n".join(f"* {s}" for s in sentences if "randomisation check" in s)
  out["FAITHFUL"] = "\n".join(f"* {s}" for s in sentences if "randomisation check" not in s)
  area = res["decoy"]["annotated_share"]
  table, loc = localisation_rows(res["decoy"], res["rrr"], area)
  out["LOCALISATION"] = table
  out["LOCALISATION_SENTENCES"] = "\n".join(f"* {s}" for s in loc)
  return out


def main(argv) -> None:
  reporting.make_page(TEMPLATE, PAGE, RESULTS, build, argv)


if __name__ == "__main__":
  main(sys.argv[1:])
