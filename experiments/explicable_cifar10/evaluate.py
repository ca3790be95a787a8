"""Evaluates the models of ``run.sh``: Table 1 of Olmo et al. and its figures.

    python experiments/explicable_cifar10/evaluate.py --workdir runs/explicable_cifar10 \
        --data-dir ../shared/data --out experiments/results/explicable_cifar10

For every trained model in WORKDIR (cce, {ihl,chl,ekl}_{softmax,l1}, cce_finetuned)
on the paper split's held-out test half (5000 CIFAR-10 test images; IHL was
built from the other half):

* top-1; the explicability-loss table (each model under L_IHL, L_CHL, L_EKL
  with the authors' softmax targets); the mean similarity M[y, pred] of the
  mistakes;
* hard / soft scores over {CCE, IHL, CHL, EKL}, once with the softmax-target
  models and once with the L1-target ones, in distribution and on
  CIFAR-10-C-style corruptions of the first ``--ood-n`` test images (6
  corruptions x 5 severities);
* accuracy under Gaussian noise (stddev 0.2, unclipped: the authors' setting)
  and FGSM (epsilon 0.3 as the authors, and 8/255) on the first
  ``--attack-n`` test images;
* figures: the weight matrices and confusion matrices (the paper's Figure 2)
  and a Grad-CAM grid of the CCE vs CHL model (Figure 3).

Writes ``results.json``, ``tables.md`` and the PNG figures into ``--out``.
"""
from __future__ import annotations

import argparse
import datetime
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from explicable_jax import (attribution, data, metrics, models, robustness,
                            similarity, training)
from explicable_jax.app import reporting

MODELS = ("cce", "ihl_softmax", "chl_softmax", "ekl_softmax",
          "cce_finetuned", "ihl_l1", "chl_l1", "ekl_l1")
SETS = {"softmax": ("cce", "ihl_softmax", "chl_softmax", "ekl_softmax"),
        "l1": ("cce", "ihl_l1", "chl_l1", "ekl_l1")}
LABEL = {"cce": "CCE", "cce_finetuned": "CCE +1 epoch"}


def _label(name: str) -> str:
  if name in LABEL:
    return LABEL[name]
  m, t = name.split("_")
  return f"{m.upper()} ({t})"


def _logits_fn(model):
  return jax.jit(models.from_nnx(model).logits)


def _predict(fn, x, batch=500):
  return np.concatenate([np.asarray(fn(jnp.asarray(x[i:i + batch])))
                         for i in range(0, len(x), batch)])


def _heatmaps(mats: dict, path: str, title: str, fmt: str = ".2f") -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  n = len(mats)
  fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.6))
  names = [c[:4] for c in similarity.CIFAR10_CLASSES]
  for ax, (name, m) in zip(np.atleast_1d(axes), mats.items()):
    ax.imshow(m, cmap="viridis", vmin=0, vmax=max(1e-9, float(np.max(m))))
    ax.set_title(name, fontsize=10)
    ax.set_xticks(range(10), names, rotation=90, fontsize=7)
    ax.set_yticks(range(10), names, fontsize=7)
    for i in range(10):
      for j in range(10):
        ax.text(j, i, format(m[i, j], fmt).lstrip("0") if m[i, j] < 1 else format(m[i, j], fmt),
                ha="center", va="center", fontsize=4.5, color="w")
  fig.suptitle(title, fontsize=11)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def _gradcam_grid(models_: dict, x, y, preds: dict, path: str, n: int = 8) -> list[int]:
  """Rows: images; columns: image, then each model's Grad-CAM of its own
  prediction at the last feature map (``post``). Picks test images the CCE
  model misclassifies and the CHL model gets right (one per true class
  first), then images both misclassify."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  names = list(models_)
  base, other = names
  candidates = np.concatenate([np.flatnonzero((preds[base] != y) & (preds[other] == y)),
                               np.flatnonzero((preds[base] != y) & (preds[other] != y))])
  pick, seen = [], set()
  for i in candidates:  # one image per true class first, then any
    if y[i] not in seen and len(pick) < n:
      pick.append(int(i))
      seen.add(y[i])
  pick += [int(i) for i in candidates if int(i) not in pick][: n - len(pick)]
  pick = np.asarray(pick, dtype=int)
  cams = {}
  for name, model in models_.items():
    f, h = models.from_nnx(model).split("post")
    cam = attribution.grad_cam(f, h, jnp.asarray(x[pick]), target="predicted")
    cams[name] = np.asarray(attribution.upsample(cam, x.shape[1:3]))
  fig, axes = plt.subplots(len(pick), 1 + len(names), figsize=(2 * (1 + len(names)),
                                                              2 * len(pick)))
  classes = similarity.CIFAR10_CLASSES
  for r, i in enumerate(pick):
    axes[r, 0].imshow(x[i])
    axes[r, 0].set_title(f"true: {classes[y[i]]}", fontsize=8)
    for c, name in enumerate(names, 1):
      axes[r, c].imshow(x[i])
      m = cams[name][r]
      axes[r, c].imshow(m / (m.max() + 1e-12), cmap="jet", alpha=0.45)
      axes[r, c].set_title(f"{_label(name)}: {classes[preds[name][i]]}", fontsize=8)
  for ax in axes.ravel():
    ax.axis("off")
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)
  return pick.tolist()


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--data-dir", default=None)
  p.add_argument("--out", required=True)
  p.add_argument("--seed", type=int, default=0, help="seed of the paper split and the noise")
  p.add_argument("--ood-n", type=int, default=1000,
                 help="test images corrupted for the out-of-distribution set")
  p.add_argument("--attack-n", type=int, default=2000,
                 help="test images attacked with noise and FGSM")
  args = p.parse_args()
  t0 = time.time()
  os.makedirs(args.out, exist_ok=True)
  key = jax.random.key(args.seed)

  split = data.paper_split("cifar10", data_dir=args.data_dir, seed=args.seed)
  test = split["test"]
  x, y = data.to_float(test.x), test.y
  mats = {n: np.load(os.path.join(args.workdir, f"W_{n.lower()}.npy"))
          for n in ("IHL", "CHL", "EKL")}
  m_expl = similarity.explicability_matrix(*mats.values())

  loaded, fns, logits, preds = {}, {}, {}, {}
  for name in MODELS:
    path = os.path.join(args.workdir, name, "model")
    if not os.path.exists(os.path.join(path, "model.json")):
      print(f"skipping {name}: no exported model in {path}")
      continue
    loaded[name], _ = training.load_model(path)
    fns[name] = _logits_fn(loaded[name])
    logits[name] = _predict(fns[name], x)
    preds[name] = logits[name].argmax(-1)
    print(f"{name}: top-1 {np.mean(preds[name] == y):.4f} ({time.time() - t0:.0f}s)")

  res = {"data": data.JPEG_CAVEAT, "test_images": int(len(y)),
         "date": datetime.date.today().isoformat(), "models": {}}
  for name in loaded:
    res["models"][name] = {
        "top1": metrics.top1_accuracy(logits[name], y),
        "explicability_loss_softmax": metrics.explicability_losses(logits[name], y, mats),
        "explicability_loss_l1": metrics.explicability_losses(logits[name], y, mats,
                                                              target="l1"),
        "mean_mistake_similarity_M": metrics.mean_mistake_similarity(y, preds[name], m_expl),
    }

  # Hard / soft scores, in distribution.
  res["hard_soft"] = {}
  for tag, names in SETS.items():
    if all(n in preds for n in names):
      res["hard_soft"][tag] = metrics.hard_soft_scores({n: preds[n] for n in names}, y, m_expl)

  # Out of distribution: CIFAR-10-C-style corruptions of the first ood_n images.
  xo, yo = x[:args.ood_n], y[:args.ood_n]
  ood_preds = {n: [] for n in loaded}
  ood_acc = {n: {} for n in loaded}
  for cname, sev, xc in robustness.corruption_suite(jax.random.fold_in(key, 1), xo):
    xc = np.asarray(xc)
    for n in loaded:
      pr = _predict(fns[n], xc).argmax(-1)
      ood_preds[n].append(pr)
      ood_acc[n].setdefault(cname, []).append(float(np.mean(pr == yo)))
  y_ood = np.tile(yo, len(next(iter(ood_preds.values()))))
  ood_preds = {n: np.concatenate(v) for n, v in ood_preds.items()}
  res["ood"] = {"images": int(len(y_ood)),
                "accuracy": {n: {c: float(np.mean(a)) for c, a in d.items()}
                             for n, d in ood_acc.items()},
                "accuracy_by_severity": ood_acc,
                "top1": {n: float(np.mean(ood_preds[n] == y_ood)) for n in loaded},
                "hard_soft": {}}
  for tag, names in SETS.items():
    if all(n in loaded for n in names):
      res["ood"]["hard_soft"][tag] = metrics.hard_soft_scores(
          {n: ood_preds[n] for n in names}, y_ood, m_expl)
  print(f"out of distribution done ({time.time() - t0:.0f}s)")

  # Gaussian noise and FGSM.
  xa, ya = x[:args.attack_n], y[:args.attack_n]
  noise = lambda k, xb, yb: robustness.gaussian_noise(k, xb, 0.2)
  res["robustness"] = {}
  for n in loaded:
    f = fns[n]
    res["robustness"][n] = {
        "gaussian_noise_0.2": robustness.accuracy_under(
            f, xa, ya, perturb=noise, key=jax.random.fold_in(key, 2)),
        "fgsm_0.3": robustness.accuracy_under(
            f, xa, ya, perturb=lambda k, xb, yb: robustness.fgsm(f, xb, yb, 0.3),
            key=key, batch_size=250),
        "fgsm_8/255": robustness.accuracy_under(
            f, xa, ya, perturb=lambda k, xb, yb: robustness.fgsm(f, xb, yb, 8 / 255),
            key=key, batch_size=250),
    }
    print(f"{n}: {res['robustness'][n]} ({time.time() - t0:.0f}s)")

  # Figures.
  _heatmaps({**{f"W_{k}": v for k, v in mats.items()}, "M (mean, row-normalised)": m_expl},
            os.path.join(args.out, "figure2_weight_matrices.png"),
            "Class-similarity matrices (row = true class)")
  for tag, names in SETS.items():
    if all(n in preds for n in names):
      _heatmaps({_label(n): metrics.confusion_matrix(y, preds[n], 10, normalize="true")
                 for n in names},
                os.path.join(args.out, f"figure2_confusion_{tag}.png"),
                f"Confusion matrices on the test half (rows normalised), {tag} targets")
  if "cce" in loaded and "chl_softmax" in loaded:
    res["gradcam_images"] = _gradcam_grid(
        {"cce": loaded["cce"], "chl_softmax": loaded["chl_softmax"]}, x, y, preds,
        os.path.join(args.out, "figure3_gradcam_cce_vs_chl.png"))

  res["wall_seconds"] = time.time() - t0

  # Tables.
  md = []
  md.append(reporting.markdown_table(
      ["model", "top-1", "L_IHL", "L_CHL", "L_EKL", "mean M[y, pred] of mistakes",
       "Gaussian 0.2", "FGSM 0.3", "FGSM 8/255", "corrupted top-1"],
      [[_label(n), f"{r['top1']:.2%}",
        *(f"{r['explicability_loss_softmax'][k]:.2f}" for k in ("IHL", "CHL", "EKL")),
        f"{r['mean_mistake_similarity_M']:.4f}",
        f"{res['robustness'][n]['gaussian_noise_0.2']:.2%}",
        f"{res['robustness'][n]['fgsm_0.3']:.2%}",
        f"{res['robustness'][n]['fgsm_8/255']:.2%}",
        f"{res['ood']['top1'][n]:.2%}"] for n, r in res["models"].items()]))
  for tag in res["hard_soft"]:
    hs, ho = res["hard_soft"][tag], res["ood"]["hard_soft"][tag]
    md.append(f"\nHard / soft scores, {tag} targets (in distribution: "
              f"{hs['num_common_mistakes']} common mistakes; corrupted: "
              f"{ho['num_common_mistakes']}):\n")
    md.append(reporting.markdown_table(
        ["model", "hard", "soft", "hard (corrupted)", "soft (corrupted)"],
        [[_label(n), hs["hard"][n], f"{hs['soft'][n]:.1f}", ho["hard"][n],
          f"{ho['soft'][n]:.1f}"] for n in SETS[tag]]))
  md.append("\nCorrupted-set accuracy by corruption (mean over severities 1-5):\n")
  cols = list(robustness.CORRUPTIONS)
  md.append(reporting.markdown_table(
      ["model", *cols],
      [[_label(n), *(f"{res['ood']['accuracy'][n][c]:.1%}" for c in cols)] for n in loaded]))
  reporting.save_results(args.out, res, ["\n".join(md)])
  print(f"wall time {res['wall_seconds']:.0f}s")


if __name__ == "__main__":
  main()
