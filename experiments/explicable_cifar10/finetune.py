"""Fine-tunes a trained CIFAR-10 classifier with a weighted loss (Olmo,
Sengupta and Kambhampati) under the authors' recipe or ours, keeping the
epoch that does best on the validation half.

    python experiments/explicable_cifar10/finetune.py \\
        --base experiments/checkpoints/resnet20_cifar10 --matrices runs/olmo/matrices \\
        --loss chl --recipe authors --epochs 3 --seed 0 \\
        --data-dir ../shared/data --workdir runs/olmo/chl_authors_s0

Recipes (``--recipe``):

* ``authors`` (aOlmo/weighted-misclassifications, ``cifar10_resnet.py`` and
  ``losses.py``): targets ``softmax(W)`` of the matrix as they store it
  (``losses.weighted_targets(target="authors")``); Adam at 1e-7, batch 128,
  no augmentation, no weight decay. Their ``ReduceLROnPlateau(factor=sqrt(0.1),
  patience=5, min_lr=0.5e-6)`` never lowers a rate that starts below
  ``min_lr`` (Keras reduces only while ``lr > min_lr``), so the rate is a
  constant 1e-7. They keep the epoch best on the *test* set
  (``ModelCheckpoint(monitor="val_accuracy")`` with the test set as
  validation data); we keep the best on the validation half.
* ``ours``: the paper's L1 targets (``W_y / sum W_y``); SGD with Nesterov
  momentum 0.9, lr 0.02, cosine decay, weight decay 5e-4, random crop and
  flip, batch 128.

``--loss cce`` is the cross-entropy control fine-tuned by the same recipe.
The run resumes from its newest checkpoint (``--workdir``); each finished
epoch is recorded in ``epochs.json`` and the best one exported to
``workdir/best``. ``result.json`` holds the chosen epoch and its
validation- and test-half numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from explicable_jax import data as data_lib
from explicable_jax import _paths, models
from explicable_jax.training import TrainConfig, evaluate, fit
from explicable_jax.training.run import build, save_model

RECIPES = {
    "authors": {"optimizer": "adam", "learning_rate": 1e-7, "schedule": "constant",
                "weight_decay": 0.0, "augment": "none", "target": "authors"},
    "ours": {"optimizer": "sgd", "learning_rate": 0.02, "schedule": "cosine",
             "weight_decay": 5e-4, "augment": "crop_flip", "target": "l1"},
}
LOSSES = ("cce", "ihl", "chl", "ekl")


def config_for(args) -> TrainConfig:
  r = RECIPES[args.recipe]
  base = models.read_meta(models.model_folder(args.base, name="--base"))
  if args.loss == "cce":
    loss, loss_kwargs = "cross_entropy", {}
  else:
    # The authors' form takes CHL as the raw 0-4 ratings.
    name = "chl_raw" if (args.loss == "chl" and r["target"] == "authors") else args.loss
    loss_kwargs = {"weights": os.path.abspath(os.path.join(args.matrices, f"W_{name}.npy")),
                   "target": r["target"]}
    if r["target"] == "authors":
      loss_kwargs["kind"] = args.loss
    loss = "weighted"
  return TrainConfig(
      dataset="cifar10", model=base["model"], model_kwargs=base.get("model_kwargs", {}),
      loss=loss, loss_kwargs=loss_kwargs, epochs=args.epochs, batch_size=128,
      optimizer=r["optimizer"], learning_rate=r["learning_rate"], schedule=r["schedule"],
      weight_decay=r["weight_decay"], augment=r["augment"], seed=args.seed,
      data_dir=args.data_dir, checkpoint_every=100, log_every=50, validation="paper",
      init_from=args.base)


def _write_json(path, obj):
  _paths.write_text(path, json.dumps(obj, indent=2))  # temporary file + rename


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--base", required=True, help="the trained model to start from")
  p.add_argument("--matrices", required=True,
                 help="folder of matrices.py's W_*.npy (with W_chl_raw.npy)")
  p.add_argument("--loss", choices=LOSSES, required=True)
  p.add_argument("--recipe", choices=tuple(RECIPES), required=True)
  p.add_argument("--epochs", type=int, default=3)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--data-dir", default=None)
  p.add_argument("--workdir", required=True)
  p.add_argument("--limit", type=int, default=None,
                 help="use only the first N images of each split (smoke tests only)")
  args = p.parse_args(argv)
  os.makedirs(args.workdir, exist_ok=True)
  config = config_for(args)
  splits = data_lib.paper_split("cifar10", data_dir=args.data_dir, seed=0)
  train, val, test = splits["train"], splits["validation"], splits["test"]
  if args.limit:
    train, val, test = (d.take(np.arange(min(args.limit, len(d)))) for d in (train, val, test))
  state, step = build(config, train)
  with open(os.path.join(args.workdir, "config.json"), "w") as f:
    json.dump({**config.__dict__, "recipe": args.recipe, "base": args.base}, f, indent=2)
  epochs_path = os.path.join(args.workdir, "epochs.json")
  done = json.load(open(epochs_path)) if os.path.exists(epochs_path) else []
  t0 = time.time()
  for epoch in range(len(done), args.epochs):
    state, _ = fit(state, train, train_step=step, epochs=epoch + 1, batch_size=128,
                seed=args.seed, workdir=args.workdir, checkpoint_every=100, log_every=50,
                progress=False)
    v = evaluate(state, val)
    rec = {"epoch": epoch + 1, "validation_accuracy": v["accuracy"],
           "validation_loss": v["loss"], "seconds": time.time() - t0}
    best = max((d["validation_accuracy"] for d in done), default=-1.0)
    if v["accuracy"] > best:
      save_model(os.path.join(args.workdir, "best"), state, config, train)
      rec["best_so_far"] = True
    done.append(rec)
    _write_json(epochs_path, done)
    print(json.dumps(rec), flush=True)
  best = max(done, key=lambda d: d["validation_accuracy"])
  clf = models.load(os.path.join(args.workdir, "best"))
  result = {"recipe": args.recipe, "loss": args.loss, "seed": args.seed,
            "epochs": args.epochs, "chosen_epoch": best["epoch"],
            "validation": evaluate(clf, val), "test": evaluate(clf, test),
            "epoch_table": done, "note": train.note}
  _write_json(os.path.join(args.workdir, "result.json"), result)
  print(json.dumps({k: result[k] for k in ("recipe", "loss", "chosen_epoch")}),
        "test accuracy", result["test"]["accuracy"])


if __name__ == "__main__":
  main()
