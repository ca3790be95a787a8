"""``explicable-jax demo``: the audit (:mod:`explicable_jax.app.audit`) on built-in data.

Everything runs on data that ships with the installed packages (no
download): Decoy digits, scikit-learn's 8x8 digits with a 2x2 swatch in a
corner whose shade encodes the label in training and a random digit at test
(Ross et al.'s Decoy MNIST at digit size). The demo

1. trains a small MLP with cross-entropy (it learns the swatch shortcut) and,
   as the reference, the same MLP with the RRR loss (input-gradient penalty
   on the swatch, Ross, Hughes and Doshi-Velez), and exports both;
2. writes the swatch masks of the test set as the annotations and CIFAR-10's
   WordNet (EKL) matrix as the similarity ``W``: the digits carry no WordNet
   structure (every digit is a sibling under ``digit.n.01``), so digit k
   stands in for CIFAR-10 class k; the mistakes section shows the mechanics,
   not a finding about digits;
3. runs ``explicable-jax audit`` on the cross-entropy model with those
   files: mistakes and hard/soft scores against the RRR model, error
   detection, reliance on the swatch, insecurities, robustness.

The command the demo ran is in ``report.html`` and ``command.txt``; rerun it
(or ``explicable-jax demo``) to resume from the caches. :func:`run_demo`
returns the report's path; ``quick=True`` trains for a few epochs only (for
tests; the numbers are not meaningful).
"""
from __future__ import annotations

import os
import time

import jax
import numpy as np
import optax

from explicable_jax import _paths, conventions, data, losses, models, similarity, training

__all__ = [
    "MLP_KWARGS", "RRR_LAMBDA", "run_demo", "train_models",
]

MLP_KWARGS = {"hidden": [50, 30]}  # Ross et al.'s Decoy MNIST model
RRR_LAMBDA = 1000.0 / 255 ** 2  # the original's lambda, for inputs in [0, 1]


def _similarity_matrix() -> tuple[np.ndarray, str]:
  """CIFAR-10's WordNet (path) matrix: from nltk's WordNet where it is
  installed (or downloadable), else the library's offline copy."""
  try:
    try:
      similarity.wordnet(download=False)
    except similarity.WordNetNotFoundError:
      if not data.network_reachable("raw.githubusercontent.com"):
        raise
      similarity.wordnet(download=True)
    w = similarity.wordnet_similarity(similarity.CIFAR10_SYNSETS.values())
    return w, "nltk WordNet 3.0, path similarity"
  except Exception:  # noqa: BLE001 - no corpus and no network: the offline copy
    return (similarity.cifar10_wordnet_similarity(),
            "WordNet 3.0 path similarity, offline copy in explicable_jax.similarity")


@conventions.boundary()
def train_models(out_dir: str, *, epochs: int, seed: int = 0, progress: bool = False
                 ) -> dict[str, str]:
  """Trains the cross-entropy MLP and the RRR reference on Decoy digits'
  training set (the paper split's) and saves them under ``out_dir``; a
  model already saved there is kept. Returns their folders."""
  split = data.paper_split("decoy_digits", seed=seed)
  train = split["train"]
  train = data.Dataset(data.to_float(train.x), train.y, train.num_classes, train.class_names,
                       extras={"annotation": np.asarray(train.extras["annotation"],
                                                        np.float32)})
  paths = {}
  for i, (name, loss) in enumerate((("model", losses.cross_entropy_loss),
                                    ("reference", losses.make_rrr_loss(RRR_LAMBDA)))):
    path = os.path.join(out_dir, name)
    paths[name] = path
    if os.path.exists(os.path.join(path, "model.json")):
      continue
    key = jax.random.key(seed)
    clf = models.classifier(jax.random.fold_in(key, 0), "mlp",
                            input_shape=train.input_shape, num_classes=10,
                            class_names=train.class_names, **MLP_KWARGS)
    opt = optax.adam(3e-3)
    state = training.create_train_state(jax.random.fold_in(key, 1), clf, opt)
    state, _ = training.fit(state, train, train_step=training.make_train_step(loss, opt),
                         epochs=epochs, batch_size=64, seed=seed, progress=progress)
    models.save(path, state.classifier, meta={"dataset": "decoy_digits", "epochs": epochs,
                                              "trained_by": f"explicable-jax demo ({name})"})
  return paths


@conventions.boundary()
def run_demo(out_dir: str = "explicable_jax_demo", *, quick: bool = False, seed: int = 0,
             progress: bool = True) -> str:
  """Trains the two models, writes the annotations and ``W``, runs the audit;
  returns ``out_dir/report.html``."""
  from explicable_jax.app import audit
  t0 = time.time()
  _paths.check_folder("out_dir", out_dir)
  os.makedirs(out_dir, exist_ok=True)
  paths = train_models(os.path.join(out_dir, "models"), epochs=3 if quick else 30,
                       seed=seed, progress=progress)
  test = data.load("decoy_digits", "test")
  ann = os.path.join(out_dir, "swatch_annotations.npz")
  np.savez(ann, mask=np.asarray(test.extras["annotation"], np.float32))
  w, source = _similarity_matrix()
  sim = os.path.join(out_dir, "cifar10_ekl_standin.npy")
  np.save(sim, w)
  config = audit.AuditConfig(
      dataset="decoy_digits", similarity=sim, annotations=ann, reference=paths["reference"],
      rates=(0.1,) if quick else (0.05, 0.1), seed=seed,
      **({"mutants": 5, "noise": (0.1,), "fgsm": (0.05,), "severities": (3,),
          "corruptions": ("gaussian_noise", "contrast"), "hardest": 4} if quick else {}))
  # The report and command.txt record the equivalent `explicable-jax audit` command.
  res = audit.audit(
      paths["model"], out_dir, config, progress=progress,
      note=("The demo: a MLP trained with cross-entropy on Decoy digits (a 2x2 swatch whose "
            "shade encodes the label in training and a random digit at test), audited with "
            "the swatch as the annotation and, as the reference, the same MLP trained with "
            "the RRR loss on the swatch. W is CIFAR-10's WordNet matrix standing in for the "
            f"digits ({source}): digit k plays CIFAR-10 class k, so the mistakes section "
            "shows the mechanics, not a finding about digits."
            + (" Quick mode: a few epochs, the numbers are not meaningful." if quick else "")))
  if progress:
    print(f"demo: {time.time() - t0:.0f} s")
  return res.report
