"""Writes the IHL, CHL and EKL weight matrices of the CIFAR-10 experiment.

    python experiments/explicable_cifar10/matrices.py --data-dir ../shared/data --out DIR

IHL is built from the CIFAR-10H soft labels of the *validation* half of the
paper split only (the paper used all 10000, i.e. the test set it reports on);
CHL from the authors' published class-level ratings; EKL from WordNet 3.0 path
similarity of :data:`explicable_jax.similarity.CIFAR10_SYNSETS`.
Outputs ``W_ihl.npy``, ``W_chl.npy``, ``W_ekl.npy``, ``W_chl_raw.npy`` (the
raw 0-4 ratings, the input of the authors' target form) and ``matrices.json``
(the matrices and each loss's mean true-class target mass: L1, the authors'
form, and a softmax of the matrices as we scale them).
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np

from explicable_jax import data, losses, similarity


def build(data_dir: str | None, seed: int = 0) -> dict[str, np.ndarray]:
  test = data.load("cifar10", "test", data_dir=data_dir)
  val_idx = data.paper_split_indices(len(test), seed=seed)["validation"]
  probs = data.load_human_labels("cifar10h", data_dir=data_dir)
  ihl = similarity.from_soft_labels(probs[val_idx], test.y[val_idx], 10)
  chl = similarity.from_ratings(data.load_human_labels("cifar10_chl", data_dir=data_dir))
  ekl = similarity.wordnet_similarity(
      [similarity.CIFAR10_SYNSETS[c] for c in similarity.CIFAR10_CLASSES],
      metric="path", data_dir=data_dir)
  return {"IHL": ihl, "CHL": chl, "EKL": ekl}


def raw_for_authors(data_dir: str | None, mats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Each matrix in the form ``weighted_targets(target="authors", kind=...)``
  takes: CHL as the raw ratings, the others as built."""
  return {**mats, "CHL": data.load_human_labels("cifar10_chl", data_dir=data_dir)}


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--data-dir", default=None)
  p.add_argument("--out", required=True)
  p.add_argument("--seed", type=int, default=0, help="seed of the paper split")
  args = p.parse_args()
  os.makedirs(args.out, exist_ok=True)
  mats = build(args.data_dir, args.seed)
  raw = raw_for_authors(args.data_dir, mats)
  for name, w in mats.items():
    np.save(os.path.join(args.out, f"W_{name.lower()}.npy"), w)
  np.save(os.path.join(args.out, "W_chl_raw.npy"), raw["CHL"])
  # How peaked each loss's targets are: the mean true-class mass.
  mass = {f"{name}_{t}": float(np.diag(
      losses.weighted_targets(raw[name], target=t, kind=name.lower()) if t == "authors"
      else losses.weighted_targets(w, target=t)).mean())
          for name, w in mats.items() for t in losses.WEIGHTED_TARGETS}
  with open(os.path.join(args.out, "matrices.json"), "w") as f:
    json.dump({**{k: np.round(v, 4).tolist() for k, v in mats.items()},
               "true_class_target_mass": mass}, f, indent=1)
  for name, w in mats.items():
    print(name, "diagonal", np.round(np.diag(w), 3).tolist())
  print("mean true-class target mass:", {k: round(v, 3) for k, v in mass.items()})


if __name__ == "__main__":
  main()
