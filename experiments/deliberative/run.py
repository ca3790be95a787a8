"""Deliberative explanations scored against known parts (Wang and Vasconcelos 2019).

    python experiments/deliberative/run.py --out experiments/results/deliberative \
        --workdir runs/deliberative

1. Train two small CNNs on the generated parts data set
   (:mod:`explicable_jax.data.parts`): a plain classifier, and one with a
   hardness-predictor output trained jointly (``make_hardness_loss``).
2. Take the ``--hard`` test images with the highest normalised entropy
   under the plain model (the original picks the 100 hardest), compute
   insecurities at the last conv layer for every difficulty score
   (hesitancy, entropy: plain model; hardness: the joint model) and
   attribution (gradient, integrated gradients, gradient-Hessian), and score
   each insecurity whose two classes share parts present in the image
   (precision, recall, IoU; :func:`deliberative.score_insecurity`) at
   r = 10%..50%; random regions of the same area are the baseline.
3. Write ``results.json`` and ``tables.md`` into ``--out``. ``--select
   random`` scores a random sample of test images instead of the hardest
   (see experiments/results/deliberative.md for why both are reported).
"""
from __future__ import annotations

import argparse
import datetime
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from explicable_jax import deliberative, losses, models, training
from explicable_jax.app import reporting
from explicable_jax.data import parts

RS = (0.1, 0.2, 0.3, 0.4, 0.5)
LAYER = "conv_1"


def _train(ds, key, *, epochs, hardness, workdir):
  c = ds.num_classes
  model = models.create_model(key, "cnn", input_shape=ds.input_shape,
                              num_classes=c + (1 if hardness else 0),
                              widths=[32, 64], dense=128, pool="flatten")
  opt = optax.adam(1e-3)
  loss = deliberative.make_hardness_loss(c) if hardness else losses.cross_entropy_loss
  state = training.create_train_state(jax.random.fold_in(key, 1), model, opt)
  # With a workdir the trained model is a checkpoint: a rerun restores it.
  return training.fit(state, ds, train_step=training.make_train_step(loss, opt), epochs=epochs,
                      batch_size=128, progress=False, workdir=workdir)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--out", required=True)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--train-n", type=int, default=20000)
  p.add_argument("--epochs", type=int, default=6)
  p.add_argument("--hard", type=int, default=200, help="test images explained")
  p.add_argument("--select", choices=("hardest", "random"), default="hardest",
                 help="explain the --hard images of highest entropy (the paper) or a "
                      "random sample of test images")
  p.add_argument("--batch", type=int, default=50)
  p.add_argument("--workdir", default="runs/deliberative",
                 help="checkpoints of the two trained CNNs (a rerun reuses them)")
  args = p.parse_args()
  os.makedirs(args.out, exist_ok=True)
  t0 = time.time()
  key = jax.random.key(args.seed)
  train = parts.parts_dataset("train", n=args.train_n, seed=args.seed)
  test = parts.parts_dataset("test", seed=args.seed)
  table = parts.class_part_table(seed=args.seed)
  c = train.num_classes

  plain = _train(train, jax.random.fold_in(key, 0), epochs=args.epochs, hardness=False,
                 workdir=os.path.join(args.workdir, f"plain_seed{args.seed}"))
  joint = _train(train, jax.random.fold_in(key, 1), epochs=args.epochs, hardness=True,
                 workdir=os.path.join(args.workdir, f"hardness_seed{args.seed}"))
  xt = jnp.asarray(test.x.astype(np.float32) / 255.0)
  logits = training.predict(plain, test.x)
  acc_plain = float(np.mean(logits.argmax(-1) == test.y))
  joint_out = training.predict(joint, test.x)
  acc_joint = float(np.mean(joint_out[:, :c].argmax(-1) == test.y))
  print(f"test accuracy: plain {acc_plain:.4f}, with hardness head {acc_joint:.4f} "
        f"({time.time() - t0:.0f}s)")
  ent = np.asarray(deliberative.normalized_entropy(jnp.asarray(logits)))
  if args.select == "hardest":
    hard = np.argsort(-ent)[:args.hard]
  else:
    hard = np.sort(np.random.default_rng(args.seed + 1).choice(len(ent), args.hard, False))
  # How often the image shows a part that the scored pair does not share
  # (without one, precision is 1 by construction).

  def split(state, num_out):
    f, h = state.classifier.split(LAYER)
    if num_out == c:
      return f, h, None
    return f, (lambda a: h(a)[:, :c]), h

  configs = [(d, m) for d in ("hesitancy", "entropy", "hardness")
             for m in ("gradient", "integrated_gradients", "gradient_hessian")]
  rng = np.random.default_rng(args.seed)
  results = {}
  for d, m in configs:
    f, h, dh = split(joint, c + 1) if d == "hardness" else split(plain, c)
    difficulty = deliberative.hardness_difficulty(c) if d == "hardness" else d
    scores = {r: {"precision": [], "recall": [], "iou": [], "has_unshared_part": []}
              for r in RS}
    rand = {r: {"precision": [], "recall": [], "iou": []} for r in RS}
    for b0 in range(0, len(hard), args.batch):
      idx = hard[b0:b0 + args.batch]
      classes, maps, dmap = deliberative.attribution_maps(
          f, h, xt[idx], difficulty=difficulty, method=m, top_k=5, difficulty_head_fn=dh)
      pairs = np.asarray(deliberative.class_ambiguities(maps, 3))
      ins = deliberative.insecurity_maps(maps, dmap, (32, 32))
      classes = np.asarray(classes)
      for r in RS:
        masks = np.asarray(deliberative.top_fraction_mask(ins, r))
        for j, i in enumerate(idx):
          for a, b in zip(*np.nonzero(pairs[j])):
            shared = parts.shared_parts(table, classes[j, a], classes[j, b])
            cen, seg = test.extras["part_centers"][i], test.extras["part_segments"][i]
            s = deliberative.score_insecurity(masks[j, a, b], shared, cen, seg)
            if s is None:
              continue
            for k in s:
              scores[r][k].append(s[k])
            present = cen[:, 0] >= 0
            scores[r]["has_unshared_part"].append(float(np.any(present & ~shared)))
            if d == "entropy" and m == "gradient":  # one random baseline suffices
              rm = deliberative.random_region(rng, (32, 32), int(masks[j, a, b].sum()))
              for k, v in deliberative.score_insecurity(rm, shared, cen, seg).items():
                rand[r][k].append(v)
    results[f"{d}/{m}"] = {r: {k: float(np.nanmean(v)) if v else float("nan")
                               for k, v in s_.items()} | {"n": len(s_["recall"])}
                           for r, s_ in scores.items()}
    if d == "entropy" and m == "gradient":
      results["random regions"] = {r: {k: float(np.nanmean(v)) for k, v in s_.items()}
                                   | {"n": len(s_["recall"])} for r, s_ in rand.items()}
    print(d, m, {r: round(v["recall"], 3) for r, v in results[f"{d}/{m}"].items()},
          f"({time.time() - t0:.0f}s)")

  res = {"date": datetime.date.today().isoformat(), "args": vars(args),
         "test_accuracy": {"plain": acc_plain, "hardness_joint": acc_joint},
         "results": {k: {str(r): v for r, v in d.items()} for k, d in results.items()},
         "wall_seconds": time.time() - t0}
  rows = [[k, *(f"{d[r]['precision']:.3f} / {d[r]['recall']:.3f} / {d[r]['iou']:.3f}"
               for r in RS), f"{np.nanmean([d[r]['recall'] for r in RS]):.3f}"]
          for k, d in results.items()]
  reporting.save_results(args.out, res, [reporting.markdown_table(
      ["difficulty / attribution", *(f"r={int(r * 100)}% P / R / IoU" for r in RS),
       "mean recall"], rows)])
  unshared = results["entropy/gradient"][RS[0]]["has_unshared_part"]
  print(f"scored (image, pair) with a visible part the pair does not share: {unshared:.1%}")
  print(f"wall time {time.time() - t0:.0f}s")


if __name__ == "__main__":
  main()
