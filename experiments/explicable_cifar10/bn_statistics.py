"""How much of a fine-tune's change is batch norm's running statistics alone.

    python experiments/explicable_cifar10/bn_statistics.py \\
        --base experiments/checkpoints/resnet20_cifar10 --epochs 3 \\
        --data-dir ../shared/data --out experiments/results/explicable_cifar10_resnet20/bn_only.json

The authors' fine-tuning recipe (Adam at 1e-7, no augmentation) moves each
weight by at most about steps x 1e-7, but every training-mode batch updates
batch norm's running mean and variance (momentum 0.9). This script does only
that: the base's weights stay fixed while its running statistics are updated
by training-mode passes over the same unaugmented batches the recipe sees
(batch 128, the fine-tune's shuffling, seed 0, ``--epochs`` epochs); then it
evaluates on the validation and test halves of the paper split. If the
authors'-recipe fine-tunes score like this, their change from the base is the
statistics, not the loss.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import time

import jax
import numpy as np

from explicable_jax import data, models, training


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--base", default="experiments/checkpoints/resnet20_cifar10")
  p.add_argument("--epochs", type=int, default=3)
  p.add_argument("--batch-size", type=int, default=128)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--data-dir", default=None)
  p.add_argument("--limit", type=int, default=None, help="training images (smoke tests only)")
  p.add_argument("--out", required=True)
  args = p.parse_args(argv)
  t0 = time.time()
  clf = models.load(models.model_folder(args.base, name="--base"))
  split = data.paper_split("cifar10", data_dir=args.data_dir, seed=args.seed)
  train = split["train"] if args.limit is None else split["train"].take(np.arange(args.limit))
  backend = clf.spec.backend

  @jax.jit
  def update_statistics(state, x):
    return backend.apply(clf.params, state, x, train=True, key=jax.random.key(0))[1]

  before = {h: training.evaluate(clf, split[h]) for h in ("validation", "test")}
  state, per_epoch = clf.state, []
  for epoch in range(args.epochs):
    for batch in data.batches(train, args.batch_size, shuffle=True, seed=args.seed, epoch=epoch,
                              drop_remainder=True):
      state = update_statistics(state, data.to_float(batch["x"]))
    now = clf.replace(state=state)
    per_epoch.append({"epoch": epoch + 1, **{
        f"{h}_accuracy": training.evaluate(now, split[h])["accuracy"]
        for h in ("validation", "test")}})
    print(per_epoch[-1], flush=True)
  res = {"date": datetime.date.today().isoformat(), "base": args.base,
         "epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed,
         "training_images": len(train), "data": data.JPEG_CAVEAT,
         "base_accuracy": {h: before[h]["accuracy"] for h in before},
         "statistics_only": per_epoch, "wall_seconds": time.time() - t0}
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(res, f, indent=2)
  print(f"wall time {res['wall_seconds']:.0f}s")


if __name__ == "__main__":
  main()
