"""Writes experiments/quickstart.ipynb (the API tour) from the cells below.

    python experiments/make_quickstart_notebook.py

Edit the cells here, not in the .ipynb; tests/test_notebook.py checks that
the committed notebook equals this script's output and runs it top to bottom.
"""
import os

import nbformat

HERE = os.path.dirname(os.path.abspath(__file__))

CELLS = [
    ("md", """# explicable_jax: a tour in ten minutes

Classifiers whose mistakes humans can understand, whose errors can be caught and
whose hesitations can be explained, as pure JAX functions. This notebook runs
top to bottom on a CPU (Colab's free tier included) in a few minutes, on
built-in data only: scikit-learn's 8x8 digits and the generated Decoy digits.

1. train a model; 2. explicable mistakes with a WordNet-weighted loss;
3. attributions (conductance, integrated gradients); 4. catching errors with
mutants and conductance; 5. right for the right reasons; 6. insecurities;
7. robustness."""),
    ("code", """# In Colab: install the library first. Set REPO to this repository's git URL
# (pip syntax, e.g. "git+https://github.com/<owner>/explicable_jax") or to the
# folder you uploaded; where explicable_jax is already installed this cell
# does nothing.
import importlib.util, subprocess, sys
REPO = ""
if importlib.util.find_spec("explicable_jax") is None:
    if not REPO:
        raise RuntimeError("explicable_jax is not installed: set REPO in this cell to the "
                           "repository's git URL or folder and run it again")
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", REPO])"""),
    ("code", """import jax, jax.numpy as jnp, numpy as np, optax
import matplotlib.pyplot as plt
from explicable_jax import (attribution, data, deliberative, detection, losses, metrics,
                            models, mutation, robustness, rrr, similarity, training)
print(jax.__version__, jax.default_backend())"""),
    ("md", """## 1. Train a model

Data sets are numpy arrays in memory; every method takes a `models.Classifier`
(the zoo's, or your own NNX, linen or plain-JAX model through `models.from_nnx`,
`from_linen`, `from_functions`); a train step is a pure function
`(state, batch) -> (state, metrics)`."""),
    ("code", """train, test = data.load("digits", "train"), data.load("digits", "test")
clf = models.classifier(jax.random.key(0), "cnn", input_shape=train.input_shape, num_classes=10,
                        widths=[16, 32], dense=64)
opt = optax.adam(3e-3)
state = training.create_train_state(jax.random.key(1), clf, opt)
state, history = training.fit(state, train, train_step=training.make_train_step(losses.cross_entropy_loss, opt),
                     epochs=6, batch_size=64, progress=False)
clf = state.classifier          # the trained model: clf.logits, clf.split(layer), clf.params
print(training.evaluate(clf, test))"""),
    ("md", """## 2. Explicable mistakes (Olmo, Sengupta and Kambhampati)

Fine-tune with `WLF(y, p) = CE(W_y / sum W_y, p)` for a class-similarity matrix
`W`. Digits have no WordNet structure, so digit *k* stands in for CIFAR-10
class *k* and `W` is CIFAR-10's WordNet matrix (offline copy; with nltk's
WordNet installed, `similarity.wordnet_similarity(similarity.CIFAR10_SYNSETS.values())`
gives the same)."""),
    ("code", """W = similarity.cifar10_wordnet_similarity()
loss = losses.make_weighted_loss(W, target="l1")
tuned, _ = training.fit(training.create_train_state(jax.random.key(2), clf, optax.adam(1e-3)),
                     train, train_step=training.make_train_step(loss, optax.adam(1e-3)),
                     epochs=3, batch_size=64, progress=False)
preds = {"cce": training.predict(clf, test.x).argmax(-1),
         "wordnet": training.predict(tuned, test.x).argmax(-1)}
print(metrics.hard_soft_scores(preds, test.y, W))
for name, p in preds.items():
    print(name, "accuracy", np.mean(p == test.y), "mean W of mistakes",
          metrics.mean_mistake_similarity(test.y, p, W))"""),
    ("md", """## 3. Attributions

`attribution.batched` has every method in Captum's form, `(clf, x, target=..., [layer=...])`;
underneath are the one-example input methods (batch them with `vmap`) and the layer methods
on the `(features_fn, head_fn)` pair of `clf.split(layer)`."""),
    ("code", """from explicable_jax.attribution import batched
features_fn, head_fn = clf.split("conv_1")
x = jnp.asarray(test.x[:64])
cond, delta = batched.layer_conductance(clf, x, layer="conv_1", target="predicted",
                                        n_steps=10, return_convergence_delta=True)
print("conductance", cond.shape, "max |completeness gap|", float(jnp.abs(delta).max()))
ig = jax.jit(lambda c, xb, t: batched.integrated_gradients(c, xb, target=t, n_steps=32))(
    clf, x[:8], test.y[:8])
fig, axes = plt.subplots(2, 8, figsize=(12, 3))
for i in range(8):
    axes[0, i].imshow(test.x[i, ..., 0], cmap="gray"); axes[1, i].imshow(ig[i, ..., 0], cmap="bwr")
    axes[0, i].axis("off"); axes[1, i].axis("off")
plt.show()"""),
    ("md", """## 4. Catching errors (Wu, Michel and Briot; Wang et al.)

Mutants of the parameters (here NAI: negate 5% of the conv filters, kept only if
they keep 90% of the accuracy) give each prediction a label change rate; the
conductance of the last conv layer feeds an error detector."""),
    ("code", """gate = mutation.accuracy_gate(clf, test.x, test.y)
mutants, info = mutation.make_mutants(jax.random.key(3), clf, 10, "NAI", 0.05, accuracy_fn=gate)
lcr = mutation.label_change_rate(clf, mutants, test.x)
wrong = training.predict(clf, test.x).argmax(-1) != test.y
print(f"{int(wrong.sum())} errors; AUROC of LCR {metrics.auroc(lcr, wrong):.3f}; "
      f"mutants drawn {info['drawn']}")
cond_all = attribution.layer_conductance(features_fn, head_fn, jnp.asarray(test.x),
                                         target="predicted", n_steps=10)
feats = np.asarray(attribution.per_feature_map(cond_all))
half = len(feats) // 2   # train the detector on one half, score the other
det = detection.train_detector(jax.random.key(4), feats[:half], wrong[:half], epochs=30)
print("conductance detector AUROC on the other half:",
      round(metrics.auroc(detection.detector_scores(det, feats[half:]), wrong[half:]), 3))"""),
    ("md", """## 5. Right for the right reasons (Ross, Hughes and Doshi-Velez)

Decoy digits: a swatch whose shade encodes the label in training and a random
digit at test. Penalising the input gradient on the swatch makes the model
ignore it."""),
    ("code", """dtrain, dtest = data.load("decoy_digits", "train"), data.load("decoy_digits", "test")
make = rrr.mlp_factory(dtrain.input_shape, 10)
results = {}
for name, loss in (("plain", losses.cross_entropy_loss), ("rrr", losses.make_rrr_loss(1000 / 255**2))):
    st = training.create_train_state(jax.random.key(6), make(jax.random.key(5)), optax.adam(1e-3))
    ds = dtrain if name == "rrr" else data.Dataset(dtrain.x, dtrain.y, 10, dtrain.class_names,
        extras={"annotation": np.zeros(dtrain.x.shape, np.float32)})
    st, _ = training.fit(st, ds, train_step=training.make_train_step(loss, optax.adam(1e-3)),
                      epochs=15, batch_size=128, progress=False)
    g = np.abs(rrr.model_input_gradients(st, dtest.x))
    results[name] = (training.evaluate(st, dtest)["accuracy"],
                     float((g * dtest.extras["annotation"]).sum() / g.sum()))
print({k: {"test accuracy": round(a, 3), "gradient share on swatch": round(s, 3)}
       for k, (a, s) in results.items()})"""),
    ("md", """## 6. Insecurities (Wang and Vasconcelos)

Where, and between which two classes, the network hesitates: the top-r region of
`m_a * m_b * d` for class maps `m` and the difficulty map `d`."""),
    ("code", """ent = np.asarray(deliberative.normalized_entropy(clf.logits(jnp.asarray(test.x))))
hard = np.argsort(-ent)[:5]
found = deliberative.insecurities(clf, test.x[hard], layer="conv_1", r=0.25,
                                  method="gradient_hessian")
fig, axes = plt.subplots(1, 5, figsize=(10, 2.4))
for ax, i, items in zip(axes, hard, found):
    ax.imshow(test.x[i, ..., 0], cmap="gray"); ax.axis("off")
    if items:
        ax.contour(items[0]["mask"].astype(float), levels=[0.5], colors="red")
        ax.set_title(f"{items[0]['class_a']} vs {items[0]['class_b']}")
plt.show()"""),
    ("md", "## 7. Robustness"),
    ("code", """for eps in (0.0, 0.05, 0.1):
    adv = robustness.fgsm(clf, jnp.asarray(test.x), test.y, eps) if eps else test.x
    print(f"FGSM eps={eps}: accuracy {np.mean(training.predict(clf, adv).argmax(-1) == test.y):.3f}")"""),
]


def build() -> nbformat.NotebookNode:
  nb = nbformat.v4.new_notebook()
  nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                               "language": "python"}
  nb.metadata["colab"] = {"provenance": []}
  for kind, src in CELLS:
    nb.cells.append(nbformat.v4.new_markdown_cell(src) if kind == "md"
                    else nbformat.v4.new_code_cell(src))
  for i, cell in enumerate(nb.cells):
    cell["id"] = f"cell-{i:02d}"  # stable ids: the file does not change between runs
  return nb


if __name__ == "__main__":
  nbformat.write(build(), os.path.join(HERE, "quickstart.ipynb"))
