"""``explicable-jax demo``: the four methods on built-in data, one HTML report.

Everything runs on data that ships with the installed packages (no download):
scikit-learn's 8x8 digits, the generated Toy Colors and Decoy digits (the
digits with a class-coded 2x2 swatch). In order:

1. **Explicable mistakes** (Olmo et al.): a CNN trained with cross-entropy,
   then fine-tuned with the weighted loss ``WLF(y, p) = CE(W_y / sum W_y, p)``
   for a WordNet matrix ``W``; the two models' mistakes compared (hard and
   soft explicability scores, mean similarity of the mistakes, confusion
   matrices). The digits have no meaningful WordNet structure (every digit
   is a sibling under ``digit.n.01``), so the ten digits stand in for
   CIFAR-10's ten classes and ``W`` is CIFAR-10's EKL matrix: the demo shows
   the mechanics (mistakes move towards pairs ``W`` calls similar), not a
   finding about digits.
2. **Right for the Right Reasons** (Ross et al.): on Decoy digits a plain
   MLP learns the swatch and fails on test images whose swatch lies; the
   RRR loss (input-gradient penalty on the swatch) ignores it. Input-gradient
   saliency of both. Toy Colors: which rule each model uses.
3. **Error detection** (Wu et al.; Wang et al.): layer conductance of the
   CNN's last conv layer feeds an MLP error detector; NAI mutants give each
   prediction a label change rate; AUROC of both and of their LDA
   combination, out of fold on held-out digits.
4. **Insecurities** (Wang and Vasconcelos): on the hardest held-out digits,
   the regions and class pairs where the CNN hesitates.

:func:`run_demo` returns the report's path; ``quick=True`` trains for a few
steps only (for tests).
"""
from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from explicable_jax import (attribution, data, deliberative, detection, losses, metrics, models,
                            mutation, rrr, similarity, training, viz)
from explicable_jax.data import rrr as drrr
from explicable_jax.app.html_report import HtmlReport
from explicable_jax.attribution import batched

CNN_KWARGS = {"widths": [16, 32], "dense": 64}
FEATURE_LAYER = "conv_1"


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


def _fit(state, ds, loss, opt, epochs, *, seed=0, progress=False, batch_size=64):
  return training.fit(state, ds, train_step=training.make_train_step(loss, opt),
                      epochs=epochs, batch_size=batch_size, seed=seed, progress=progress)


def explicable_section(report, train, test, key, *, epochs, progress):
  import matplotlib.pyplot as plt
  w, source = _similarity_matrix()
  names = [f"{d}: {c}" for d, c in zip(range(10), similarity.CIFAR10_SYNSETS)]
  model = models.create_model(jax.random.fold_in(key, 0), "cnn", input_shape=train.input_shape,
                              num_classes=train.num_classes,
                              **CNN_KWARGS)
  opt = optax.adam(3e-3)
  plain = _fit(training.create_train_state(jax.random.fold_in(key, 1), model, opt), train,
               losses.cross_entropy_loss, opt, epochs, progress=progress)
  opt_ft = optax.adam(1e-3)
  weighted = _fit(training.create_train_state(jax.random.fold_in(key, 2), plain.model(), opt_ft),
                  train, losses.make_weighted_loss(w, target="l1"), opt_ft,
                  max(1, epochs // 3), progress=progress)
  preds = {"cross-entropy": training.predict(plain, test.x).argmax(-1),
           "WordNet-weighted (WLF, L1)": training.predict(weighted, test.x).argmax(-1)}
  scores = metrics.hard_soft_scores(preds, test.y, w)
  rows = []
  for name, p in preds.items():
    wrong = p != test.y
    rows.append([name, float(np.mean(~wrong)), int(wrong.sum()),
                 float(metrics.mean_mistake_similarity(test.y, p, w)) if wrong.any() else "n/a",
                 scores["hard"][name], float(scores["soft"][name])])
  report.section("explicable", "1. Explicable mistakes: cross-entropy vs a WordNet-weighted loss")
  report.paragraph(
      "Olmo, Sengupta and Kambhampati fine-tune with WLF(y, p) = CE(W_y / sum(W_y), p) so that "
      "a model's mistakes land on classes the matrix W calls similar. The 8x8 digits carry no "
      "WordNet structure, so digit k stands in for CIFAR-10 class k and W is CIFAR-10's EKL "
      f"matrix ({source}): this shows the mechanics, not a finding about digits. Held-out "
      f"digits: {len(test)}.")
  (_, _, _, w_plain, *_), (_, _, _, w_weighted, *_) = rows
  if isinstance(w_plain, float) and isinstance(w_weighted, float):
    report.paragraph(
        f"In this run the weighted model's mistakes have mean similarity {w_weighted:.3f} to "
        f"their true class against {w_plain:.3f} for cross-entropy "
        f"({'higher: more explicable' if w_weighted > w_plain else 'not higher'}), at "
        f"accuracy {rows[1][1]:.3f} against {rows[0][1]:.3f}.")
  report.table(["model", "accuracy", "mistakes", "mean W of mistakes", "hard score",
                "soft score"], rows,
               caption=f"Hard/soft scores over the {scores['num_common_mistakes']} examples "
                       "both models get wrong (the soft scores sum to that count).")
  fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
  viz.heatmap(w, names, ax=axes[0], title="W: WordNet path similarity (EKL)")
  for ax, (name, p) in zip(axes[1:], preds.items()):
    cm = np.asarray(metrics.confusion_matrix(test.y, p, 10))
    viz.heatmap(cm.astype(float), names, ax=ax, title=f"confusion: {name}", fmt="{:.0f}")
  report.figure(fig, "The similarity matrix and each model's confusion matrix "
                     "(rows: true class, columns: predicted).")
  return plain


def rrr_section(report, key, *, epochs, progress, quick):
  import matplotlib.pyplot as plt
  train, test = data.load("decoy_digits", "train"), data.load("decoy_digits", "test")
  lam = 1000.0 / 255 ** 2  # the original's lambda, for inputs in [0, 1]
  make = rrr.mlp_factory(train.input_shape, 10)
  opt = optax.adam(1e-3)
  no_ann = data.Dataset(train.x, train.y, 10, train.class_names,
                        extras={"annotation": np.zeros(train.x.shape, np.float32)})
  plain = _fit(training.create_train_state(jax.random.fold_in(key, 1),
                                           make(jax.random.fold_in(key, 0)), opt),
               no_ann, losses.cross_entropy_loss, opt, epochs, progress=progress, batch_size=128)
  right = _fit(training.create_train_state(jax.random.fold_in(key, 1),
                                           make(jax.random.fold_in(key, 0)), opt),
               train, losses.make_rrr_loss(lam), opt, epochs, progress=progress, batch_size=128)
  ann = test.extras["annotation"]
  rows, grads = [], {}
  for name, st in (("cross-entropy", plain), ("RRR (swatch annotated)", right)):
    g = np.abs(rrr.model_input_gradients(st, test.x))
    grads[name] = g
    on_swatch = float((g * ann).sum() / max(g.sum(), 1e-30))
    rows.append([name, float(training.evaluate(st, test)["accuracy"]), on_swatch])
  report.section("rrr", "2. Right for the Right Reasons: Decoy digits and Toy Colors")
  report.paragraph(
      "Ross, Hughes and Doshi-Velez: in training, a 2x2 swatch in a corner has the shade "
      "255 - 25 * label, a perfect shortcut; at test its shade encodes a random digit. "
      "The RRR loss penalises the input gradient of the log-probabilities on the annotated "
      f"swatch (lambda = 1000 in the original's 0-255 pixel units). MLP 50-30, {epochs} "
      "epochs, Adam 1e-3.")
  report.table(["model", "test accuracy (swatch lies)", "share of |input gradient| on swatch"],
               rows)
  n_show = 6
  fig, axes = plt.subplots(3, n_show, figsize=(1.6 * n_show, 5))
  for j in range(n_show):
    axes[0, j].imshow(test.x[j, ..., 0], cmap="gray")
    axes[0, j].set_title(f"label {test.y[j]}", fontsize=8)
    axes[0, j].axis("off")
    for i, name in enumerate(grads, start=1):
      viz.attribution_overlay(test.x[j], grads[name][j], ax=axes[i, j], signed=False,
                              title=name.split(" ")[0] if j == 0 else "")
  report.figure(fig, "Test digits (top) and |input gradient| saliency over them of the plain "
                     "model (middle) and the RRR model (bottom): the plain model looks at the "
                     "swatch.")

  n = 2000 if quick else 20000  # the rrr experiment's size
  tc_train, tc_test = drrr.toy_colors("train", n=n), drrr.toy_colors("test", n=n)
  make2 = rrr.mlp_factory(tc_train.input_shape, 2)
  tc_rows = []
  for i, (name, mask) in enumerate((("cross-entropy", None),
                                    ("RRR, corners annotated",
                                     drrr.toy_colors_rule_mask("corners")))):
    ds = data.Dataset(tc_train.x, tc_train.y, 2, tc_train.class_names, extras={
        "annotation": np.broadcast_to(mask if mask is not None else 0.0,
                                      tc_train.x.shape).astype(np.float32)})
    st = _fit(training.create_train_state(jax.random.fold_in(key, 20 + i),
                                          make2(jax.random.fold_in(key, 10 + i)), opt),
              ds, losses.make_rrr_loss(lam) if mask is not None else losses.cross_entropy_loss,
              opt, 2 if quick else 16, progress=progress, batch_size=256)
    s = drrr.toy_colors_rule_scores(rrr.model_input_gradients(st, tc_test.x[:1000]))
    tc_rows.append([name, float(training.evaluate(st, tc_test)["accuracy"]), s["rule1"],
                    s["rule2"]])
  report.paragraph(
      "Toy Colors: either of two rules (four equal corners; three different top-middle "
      "pixels) classifies every image. Rule scores are the share of each explanation's "
      "pixels in the corners and in the top middle; annotating the corners moves the model "
      "to the other rule.")
  report.table(["model", "test accuracy", "corner share (rule 1)", "top-middle share (rule 2)"],
               tc_rows)


def detection_section(report, state, held, key, *, n_mutants):
  import matplotlib.pyplot as plt
  from sklearn.model_selection import StratifiedKFold
  clf = state.classifier
  x, y = np.asarray(held.x), held.y
  logits = np.asarray(clf.logits(jnp.asarray(x)))
  pred = logits.argmax(-1)
  wrong = pred != y
  msp = np.asarray(detection.scores.msp(logits))  # the baseline: the model's own confidence
  cond = batched.layer_conductance(clf, jnp.asarray(x), layer=FEATURE_LAYER,
                                   target="predicted", n_steps=10)
  feats = np.concatenate([np.eye(10)[pred], np.asarray(attribution.per_feature_map(cond))], 1)
  gate = mutation.accuracy_gate(clf, x, y)
  mutants, _ = mutation.make_mutants(jax.random.fold_in(key, 0), clf, n_mutants, "NAI",
                                     0.05, accuracy_fn=gate)
  lcr = mutation.label_change_rate(clf, mutants, x, original_predictions=pred)
  det = np.empty(len(y))
  comb = np.empty(len(y))
  folds = StratifiedKFold(min(5, int(wrong.sum())), shuffle=True, random_state=0)
  for i, (tr, te) in enumerate(folds.split(feats, wrong)):
    d = detection.train_detector(jax.random.fold_in(key, 10 + i), feats[tr], wrong[tr],
                                 epochs=30)
    det[te] = detection.detector_scores(d, feats[te])
    det_tr = detection.detector_scores(d, feats[tr])
    c = detection.fit_combiner("lda", np.stack([lcr[tr], det_tr], 1), wrong[tr])
    comb[te] = c.scores(np.stack([lcr[te], det[te]], 1))
  curves = {"baseline: 1 - max softmax probability": msp, "conductance detector (MLP)": det,
            f"LCR, {n_mutants} NAI mutants": lcr, "LDA on [LCR, detector]": comb}
  rows = [[name, float(metrics.auroc(s, wrong))] for name, s in curves.items()]
  fig = viz.roc_curves(curves, wrong, ax=plt.subplots(figsize=(5, 4.5))[1]).figure
  report.section("detection", "3. Catching errors: conductance and mutation testing")
  report.paragraph(
      "Wu, Michel and Briot: the layer conductance of the last conv layer (right-end rule, "
      "n = 10, black baseline), averaged per feature map and joined to the one-hot "
      "prediction, feeds an MLP 200-200 error detector. Wang et al.: the label change rate "
      "of a prediction over model mutants (NAI: 5% of the conv filters negated; mutants kept "
      "only if they reach 90% of the model's accuracy). The first row is the baseline every "
      "detector must beat: the model's own confidence (Hendrycks and Gimpel, 2017). Scores "
      "are out of fold (5 folds) on "
      f"{len(y)} held-out digits with {int(wrong.sum())} errors, so the AUROCs are noisy.")
  report.table(["error score", "AUROC"], rows)
  report.figure(fig, "ROC curves of the error scores.")


def insecurity_section(report, state, held, *, n_images=6):
  import matplotlib.pyplot as plt
  clf = state.classifier
  x = np.asarray(held.x)
  logits = np.asarray(clf.logits(jnp.asarray(x)))
  hard = np.argsort(-np.asarray(deliberative.normalized_entropy(logits)))[:n_images]
  items = deliberative.insecurities(clf, x[hard], layer=FEATURE_LAYER, r=0.25,
                                    method="gradient", top_k=5, top=3)
  fig, axes = plt.subplots(1, n_images, figsize=(1.9 * n_images, 2.6))
  rows = []
  for ax, i, its in zip(axes, hard, items):
    title = f"label {held.y[i]}, pred {logits[i].argmax()}"
    if its:
      top = its[0]
      title += f"\n{top['class_a']} vs {top['class_b']}"
      rows.append([int(i), int(held.y[i]), int(logits[i].argmax()),
                   ", ".join(f"{d['class_a']}-{d['class_b']}" for d in its[:3])])
    viz.insecurity_outline(x[i], its[0]["mask"] if its else np.zeros(x.shape[1:3], bool),
                           ax=ax, title=title, color="red", dim=0.0)
  report.section("insecurities", "4. Where the network hesitates: insecurities")
  report.paragraph(
      "Wang and Vasconcelos: for the held-out digits with the highest normalised entropy, "
      "the class maps (gradient x activation at the last conv layer) of the top-5 classes, "
      "the entropy's difficulty map, and for each candidate pair (a, b) the region where "
      "m_a * m_b * d is in its top 25%. Outlined: the strongest insecurity and its two "
      "classes.")
  report.figure(fig, "Insecurities of the hardest held-out digits.")
  report.table(["index", "label", "prediction", "strongest pairs"], rows)


def run_demo(out_dir: str = "explicable_jax_demo", *, quick: bool = False, seed: int = 0,
             progress: bool = True) -> str:
  """Runs the four sections and writes ``out_dir/report.html``; returns its path."""
  import matplotlib
  matplotlib.use("Agg")
  from tqdm.auto import tqdm
  t0 = time.time()
  key = jax.random.key(seed)
  full = data.load("digits", "train")
  test = data.load("digits", "test")
  epochs = 2 if quick else 15
  report = HtmlReport("explicable_jax demo",
                      f"Built-in data only; {time.strftime('%Y-%m-%d %H:%M')}; jax "
                      f"{jax.__version__} on {jax.default_backend()}; seed {seed}"
                      + ("; quick mode (a few epochs: numbers are not meaningful)"
                         if quick else ""))
  stages = tqdm(total=4, desc="demo", unit="section", disable=not progress)
  stages.set_postfix_str("explicable mistakes")
  base = explicable_section(report, full, test, jax.random.fold_in(key, 1),
                            epochs=epochs, progress=progress)
  stages.update(1)
  stages.set_postfix_str("right for the right reasons")
  rrr_section(report, jax.random.fold_in(key, 2), epochs=4 if quick else 40,
              progress=progress, quick=quick)
  stages.update(1)
  stages.set_postfix_str("error detection")
  detection_section(report, base, test, jax.random.fold_in(key, 3),
                    n_mutants=8 if quick else 50)
  stages.update(1)
  stages.set_postfix_str("insecurities")
  insecurity_section(report, base, test)
  stages.update(1)
  stages.close()
  report.paragraph(f"Total wall time {time.time() - t0:.0f} s.", note=True)
  path = report.write(os.path.join(out_dir, "report.html"))
  return path
