"""Are the explanations right? Every attribution method of the library scored
with the sanity checks and the faithfulness, robustness, complexity and
localisation metrics of :mod:`explicable_jax.attribution.evaluation`, on the
committed ResNet-20 (CIFAR-10) and on two Decoy MNIST MLPs (one trained with
cross-entropy, which learns the swatch, one with the RRR penalty on the
swatch, Ross et al.).

    nohup python experiments/attribution_evaluation/run.py \\
        --data-dir /work/shared/data --workdir runs/attribution_evaluation \\
        --out experiments/results/attribution_evaluation --images 64 \\
        > runs/attribution_evaluation.log 2>&1 &
    python experiments/attribution_evaluation/make_page.py

Each model is scored by ``explicable-jax evaluate-attributions``' function
(:func:`explicable_jax.app.attributions.evaluate_attributions`), whose
per-method cache lives in ``--workdir``: an interrupted run resumes, with the
same command, at the first method not yet scored; the Decoy MNIST models are
saved there once trained. ``--out`` receives one ``results.json`` per model
(every interval and every per-image value) and ``run.json`` (the command,
the date, the wall time, the machine).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time

import jax
import numpy as np

from explicable_jax import data, models, training
from explicable_jax.app import attributions

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
RESNET20 = os.path.join(ROOT, "experiments", "checkpoints", "resnet20_cifar10", "model")
RRR_LAMBDA = 1e3  # Ross et al.'s lambda for Decoy MNIST, in their 0-255 units


def train_decoy_models(workdir: str, *, data_dir, epochs: int, seed: int) -> dict[str, str]:
  """The decoy-trained (cross-entropy) and the RRR-trained MLP 50-30 on Decoy
  MNIST, with experiments/rrr/run.py's recipe ("ours": [0, 1] pixels, He
  initialisation, Adam 1e-3, batch 256); saved once in ``workdir``."""
  sys.path.insert(0, os.path.join(ROOT, "experiments", "rrr"))
  import run as rrr_run  # noqa: PLC0415 - the RRR experiment's training recipe
  proto = rrr_run.PROTOCOLS["ours"]
  train = test = None
  paths = {}
  for name, lam in (("decoy-trained", 0.0), ("RRR-trained", RRR_LAMBDA)):
    path = os.path.join(workdir, "decoy_mnist", name.split("-")[0].lower())
    paths[name] = path
    if os.path.exists(os.path.join(path, "model.json")):
      continue
    if train is None:
      train = rrr_run._pixels(data.load("decoy_mnist", "train", data_dir=data_dir, seed=seed),
                              proto)
      test = rrr_run._pixels(data.load("decoy_mnist", "test", data_dir=data_dir, seed=seed),
                             proto)
    t0 = time.time()
    state = rrr_run._fit(rrr_run._name_key(jax.random.key(seed), name), train, proto,
                         lam=lam * proto["lam_scale"], epochs=epochs)
    acc = float(training.evaluate(state, test)["accuracy"])
    # The same architecture built by name, so that the folder records its
    # rebuild recipe (models.load needs it), with the trained weights.
    clf = models.classifier(jax.random.key(seed), "mlp", input_shape=train.input_shape,
                            num_classes=train.num_classes, hidden=(50, 30),
                            class_names=train.class_names)
    clf = clf.with_params(state.classifier.params)
    models.save(path, clf, meta={
        "dataset": "decoy_mnist", "epochs": epochs, "rrr_lambda": lam,
        "test_accuracy": acc, "train_seconds": time.time() - t0,
        "trained_by": "experiments/attribution_evaluation/run.py"})
    print(f"{name}: test accuracy {acc:.4f} ({time.time() - t0:.0f} s)", flush=True)
  return paths


def swatch_annotations(workdir: str, *, data_dir, seed: int) -> str:
  """The Decoy MNIST test set's swatch masks as an annotations ``.npz``."""
  path = os.path.join(workdir, "decoy_mnist", "swatch.npz")
  if not os.path.exists(path):
    test = data.load("decoy_mnist", "test", data_dir=data_dir, seed=seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.savez(path, mask=np.asarray(test.extras["annotation"], np.float32))
  return path


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--data-dir", default=os.environ.get("EXPLICABLE_JAX_DATA"))
  p.add_argument("--workdir", default="runs/attribution_evaluation")
  p.add_argument("--out", default=os.path.join(ROOT, "experiments", "results",
                                               "attribution_evaluation"))
  p.add_argument("--images", type=int, default=64, help="test images per model")
  p.add_argument("--epochs", type=int, default=8, help="Decoy MNIST training epochs")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--models", nargs="+", default=["resnet20", "decoy", "rrr"],
                 choices=["resnet20", "decoy", "rrr"])
  args = p.parse_args(argv)
  t0 = time.time()
  os.makedirs(args.out, exist_ok=True)
  command = "python experiments/attribution_evaluation/run.py " + " ".join(
      argv if argv is not None else sys.argv[1:])
  decoy = train_decoy_models(args.workdir, data_dir=args.data_dir, epochs=args.epochs,
                             seed=args.seed) if {"decoy", "rrr"} & set(args.models) else {}
  ann = swatch_annotations(args.workdir, data_dir=args.data_dir, seed=args.seed)
  jobs = {"resnet20": (RESNET20, {"dataset": "cifar10"}),
          "decoy": (decoy.get("decoy-trained"), {"dataset": "decoy_mnist", "annotations": ann}),
          "rrr": (decoy.get("RRR-trained"), {"dataset": "decoy_mnist", "annotations": ann})}
  for name in args.models:
    model, settings = jobs[name]
    print(f"== {name}", flush=True)
    res = attributions.evaluate_attributions(
        model, os.path.join(args.workdir, name), images=args.images, seed=args.seed,
        data_dir=args.data_dir, command=command, **settings)
    res["model_meta"] = models.read_meta(model)
    with open(os.path.join(args.out, f"{name}.json"), "w") as f:
      json.dump(res, f, indent=1, default=float)
  with open(os.path.join(args.out, "run.json"), "w") as f:
    json.dump({"command": command, "date": datetime.date.today().isoformat(),
               "wall_seconds": time.time() - t0, "images": args.images,
               "epochs": args.epochs, "seed": args.seed, "models": args.models,
               "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores (shared), "
                          f"jax {jax.__version__} on {jax.default_backend()}"}, f, indent=1)
  print(f"done in {time.time() - t0:.0f} s", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
