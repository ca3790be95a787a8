"""Accuracy cost of bfloat16 mixed precision: one short CIFAR-10 run per compute dtype.

    python -m benchmarks.mixed_precision [--train-images 10000] [--epochs 2] [--out runs/x.json]

ResNet-20 trained twice from the same initial weights, data order and
augmentation (same seed), once with ``compute_dtype="float32"`` and once with
``"bfloat16"`` (:func:`explicable_jax.training.make_train_step`: float32
weights, optimiser and batch statistics; bfloat16 convolutions and matrix
products), on the first ``--train-images`` CIFAR-10 training images, SGD
with Nesterov momentum, one-cycle schedule, crop-and-flip augmentation.
Both models are evaluated in float32 on the 10000 test images. Data: the
local CIFAR-10 copy (``$EXPLICABLE_JAX_DATA`` or ``--data-dir``), which is
the JPEG-decoded copy of shared/data (only 1017 test / 8068 training images
are pixel-exact). One seed: differences of a point or so are within the
seed-to-seed spread of such short runs.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time

import jax
import numpy as np

from explicable_jax import data, training


def run_one(compute_dtype: str, train: data.Dataset, test: data.Dataset, *, epochs: int,
            batch_size: int, learning_rate: float, seed: int, log_every: int) -> dict:
  config = training.TrainConfig(dataset="cifar10", model="resnet20", epochs=epochs,
                                batch_size=batch_size, optimizer="sgd",
                                learning_rate=learning_rate, schedule="one_cycle",
                                weight_decay=5e-4, seed=seed, compute_dtype=compute_dtype)
  state, step = training.build(config, train)
  t0 = time.time()
  state, history = training.fit(state, train, train_step=step, epochs=epochs,
                                batch_size=batch_size, seed=seed, log_every=log_every,
                                progress=False)
  seconds = time.time() - t0
  steps, losses = history.series("loss")
  return {"compute_dtype": compute_dtype, "config": dataclasses.asdict(config),
          "train_seconds": seconds, "test": training.evaluate(state, test),
          "loss_curve": {"steps": steps.tolist(), "loss": losses.tolist()}}


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--train-images", type=int, default=10000)
  p.add_argument("--epochs", type=int, default=2)
  p.add_argument("--batch-size", type=int, default=128)
  p.add_argument("--lr", type=float, default=0.1)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--log-every", type=int, default=10)
  p.add_argument("--data-dir", default=None)
  p.add_argument("--out", default=None, help="JSON file for the results")
  args = p.parse_args(argv)
  train = data.load("cifar10", "train", data_dir=args.data_dir)
  train = train.take(slice(0, args.train_images))
  test = data.load("cifar10", "test", data_dir=args.data_dir)
  runs = []
  for dtype in training.COMPUTE_DTYPES:
    runs.append(run_one(dtype, train, test, epochs=args.epochs, batch_size=args.batch_size,
                        learning_rate=args.lr, seed=args.seed, log_every=args.log_every))
    print(json.dumps({k: runs[-1][k] for k in ("compute_dtype", "train_seconds", "test")}),
          flush=True)
  result = {"date": time.strftime("%Y-%m-%d"), "argv": vars(args), "note": train.note,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__}",
            "runs": runs}
  a, b = runs
  lines = [("| compute dtype | test accuracy | test loss | final logged train loss | "
            "train seconds |"), "|---|---|---|---|---|"]
  for r in runs:
    lines.append(f"| {r['compute_dtype']} | {r['test']['accuracy']:.4f} | "
                 f"{r['test']['loss']:.4f} | {r['loss_curve']['loss'][-1]:.4f} | "
                 f"{r['train_seconds']:.0f} |")
  curve = np.abs(np.array(b["loss_curve"]["loss"]) - np.array(a["loss_curve"]["loss"]))
  lines.append("")
  lines.append(f"bfloat16 - float32: test accuracy {100 * (b['test']['accuracy'] - a['test']['accuracy']):+.2f} "
               f"points; logged training losses differ by at most {curve.max():.3f} "
               f"(mean {curve.mean():.3f}) over {len(curve)} points.")
  result["markdown"] = "\n".join(lines)
  print(result["markdown"])
  if args.out:
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
      json.dump(result, f, indent=1)


if __name__ == "__main__":
  main()
