"""Insecurities of a trained CIFAR-10 network on its hardest test images (figure).

    python experiments/deliberative/cifar10_figure.py --model runs/resnet20_cifar10 \
        --data-dir ../shared/data --out experiments/results/deliberative

Loads a model exported by ``explicable-jax train`` (``--model`` is the run's
workdir or its ``model/`` folder), takes the ``--images`` test-half images
(the paper split) with the highest normalised entropy, computes their
insecurities at the last feature layer before global pooling (second-order
``gradient_hessian`` maps, entropy difficulty, top-5 classes, top-3
ambiguities, r = ``--r``) and draws, per image, the image and its
``--per-image`` strongest insecurities (region outlined, the two classes in
the title). Writes ``cifar10_insecurities.png`` and
``cifar10_insecurities.json`` (indices, labels, predictions, pairs,
strengths) into ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from explicable_jax import data, deliberative, models, training


def feature_layer(layer_names) -> str:
  """The last layer before global pooling (``pool``)."""
  names = list(layer_names)
  if "pool" not in names or names.index("pool") == 0:
    raise ValueError(f"the model has no layer before 'pool'; its layers are {names}.")
  return names[names.index("pool") - 1]


def draw(images, labels, preds, items, class_names, path, per_image):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from explicable_jax import viz
  rows = len(images)
  fig, axes = plt.subplots(rows, 1 + per_image, figsize=(2.2 * (1 + per_image), 2.3 * rows))
  axes = np.atleast_2d(axes)
  for i, (img, y, p, its) in enumerate(zip(images, labels, preds, items)):
    axes[i, 0].imshow(img)
    axes[i, 0].set_title(f"label {class_names[y]}\npred {class_names[p]}", fontsize=8)
    for j in range(per_image):
      ax = axes[i, 1 + j]
      if j < len(its):
        it = its[j]
        viz.insecurity_outline(
            img, it["mask"], ax=ax,
            title=f"{class_names[it['class_a']]} vs\n{class_names[it['class_b']]}")
      else:
        ax.imshow(img)
    for ax in axes[i]:
      ax.axis("off")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--model", required=True)
  p.add_argument("--data-dir", default=None)
  p.add_argument("--out", required=True)
  p.add_argument("--images", type=int, default=6)
  p.add_argument("--per-image", type=int, default=3)
  p.add_argument("--r", type=float, default=0.2)
  p.add_argument("--method", default="gradient_hessian", choices=deliberative.ATTRIBUTIONS)
  p.add_argument("--seed", type=int, default=0)
  args = p.parse_args()
  t0 = time.time()
  os.makedirs(args.out, exist_ok=True)
  path = models.model_folder(args.model, name="--model")
  clf, meta = models.load(path), models.read_meta(path)
  layer = feature_layer(clf.layers)
  test = data.paper_split("cifar10", data_dir=args.data_dir, seed=args.seed)["test"]
  x = data.to_float(test.x)
  logits = training.predict(clf, x)
  ent = np.asarray(deliberative.normalized_entropy(logits))
  hard = np.argsort(-ent)[:args.images]
  items = deliberative.insecurities(clf, x[hard], layer=layer, r=args.r, difficulty="entropy",
                                    method=args.method, top_k=5, top=3)
  preds = logits[hard].argmax(-1)
  names = meta["class_names"]
  draw(test.x[hard], test.y[hard], preds, items, names,
       os.path.join(args.out, "cifar10_insecurities.png"), args.per_image)
  record = {
      "model": path, "model_meta": meta, "layer": layer,
      "method": args.method, "r": args.r, "data": data.JPEG_CAVEAT,
      "wall_seconds": time.time() - t0,
      "images": [{"test_index": int(i), "label": names[int(test.y[i])],
                  "prediction": names[int(pr)], "normalized_entropy": float(ent[i]),
                  "insecurities": [{"class_a": names[it["class_a"]],
                                    "class_b": names[it["class_b"]],
                                    "strength": it["strength"]} for it in its]}
                 for i, pr, its in zip(hard, preds, items)]}
  with open(os.path.join(args.out, "cifar10_insecurities.json"), "w") as fh:
    json.dump(record, fh, indent=1)
  print(f"layer {layer}; wrote {args.out}/cifar10_insecurities.png ({time.time() - t0:.0f}s)")


if __name__ == "__main__":
  main()
