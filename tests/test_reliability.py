"""Reliability suite: bad inputs, non-finite losses, damaged checkpoints,
killed runs, determinism, and property tests of the losses, metrics and
mutation operators.

Bad inputs: every row calls one public function with one bad argument and
checks the exception type and that the message names the argument (and, for
most, what was expected), so a user can fix the call from the message alone.
"""
from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings, strategies as st

from helpers import small_setup as _small_setup
import explicable_jax
from explicable_jax import (attribution, data, deliberative, detection, losses, metrics, models,
                            mutation, robustness, rrr, similarity, stats, training, viz)
from explicable_jax.app import cli, reporting
from explicable_jax.attribution import batched as batched_, evaluation as ev
from flax import nnx

ROOT = pathlib.Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------
# Small fixtures built once.


def _cnn():
  return models.create_model(jax.random.key(0), "cnn", input_shape=(8, 8, 1), num_classes=10,
                             widths=[4], dense=8)


_MODEL = _cnn()
_G, _P, _S = models.split_model(_MODEL)
_F, _H = models.split_at(_G, _P, _S, "conv_0")
_X = np.zeros((4, 8, 8, 1), np.float32)
_Y = np.zeros(4, np.int32)
_LOGITS_FN = lambda x: models.apply_model(_G, _P, _S, x)[0]  # noqa: E731
_SCORE = attribution.class_score_fn(_LOGITS_FN, 0)


def _digits():
  return data.load("digits", "train")


# (id, call, exception type, regex the message must match: the argument's name
# and, where there is one, what was expected).
BAD_INPUTS = [
    # data
    ("data.load name", lambda: data.load("imagenet"), ValueError, r"dataset.*digits"),
    ("data.load split", lambda: data.load("digits", "dev"), ValueError, r"split"),
    ("data.batches batch_size", lambda: next(data.batches(_digits(), 0)), ValueError,
     r"batch_size.*positive"),
    ("data.split_indices counts", lambda: data.split_indices(10, [8, 8], seed=0), ValueError,
     r"counts"),
    ("data.load_human_labels name", lambda: data.load_human_labels("cifar11"), ValueError,
     r"name|cifar10h"),
    # models
    ("models.create_model key first", lambda: models.create_model(
        "cnn", jax.random.key(0), input_shape=(8, 8, 1), num_classes=10), TypeError,
     r"create_model\(key, name"),
    ("models.create_model name", lambda: models.create_model(jax.random.key(0), "resnet21",
                                                             input_shape=(32, 32, 3),
                                                             num_classes=10),
     ValueError, r"model.*resnet20"),
    ("models.create_model num_classes", lambda: models.create_model(jax.random.key(0), "mlp",
                                                                    input_shape=(8, 8, 1),
                                                                    num_classes=0),
     ValueError, r"num_classes.*positive"),
    ("models.split_at layer", lambda: models.split_at(_G, _P, _S, "conv_9"), ValueError,
     r"layer.*conv_0"),
    # training
    ("TrainConfig learning_rate", lambda: training.TrainConfig(
        dataset="digits", model="mlp", learning_rate=-1.0).validate(), ValueError,
     r"learning_rate.*positive"),
    ("TrainConfig batch_size", lambda: training.TrainConfig(
        dataset="digits", model="mlp", batch_size=0).validate(), ValueError,
     r"batch_size.*positive"),
    ("make_schedule name", lambda: training.make_schedule("triangle", 0.1, 100), ValueError,
     r"schedule.*cosine"),
    ("load_model path", lambda: training.load_model("/nonexistent/model"), FileNotFoundError,
     r"path.*model\.json"),
    # losses
    ("make_weighted_loss weights shape", lambda: losses.make_weighted_loss(np.ones((3, 4))),
     ValueError, r"weights.*square"),
    ("make_weighted_loss target", lambda: losses.make_weighted_loss(np.eye(3), target="l2"),
     ValueError, r"target.*l1"),
    ("make_rrr_loss lam", lambda: losses.make_rrr_loss(-1.0), ValueError, r"lam.*non-negative"),
    ("make_label_smoothing_loss alpha", lambda: losses.make_label_smoothing_loss(1.5),
     ValueError, r"alpha.*\[0, 1\]"),
    # similarity
    ("wordnet_similarity metric", lambda: similarity.wordnet_similarity(
        ["dog.n.01", "cat.n.01"], metric="cosine"), ValueError, r"metric.*path"),
    ("from_soft_labels labels", lambda: similarity.from_soft_labels(
        np.full((2, 3), 1 / 3), np.array([0, 5]), 3), ValueError, r"labels.*\[0, 3\)"),
    ("row_normalize weights", lambda: similarity.row_normalize(-np.eye(3)), ValueError,
     r"weights.*non-negative"),
    # metrics
    ("auroc one class", lambda: metrics.auroc([0.1, 0.2], [True, True]), ValueError,
     r"is_positive.*both"),
    ("auroc lengths", lambda: metrics.auroc([0.1, 0.2, 0.3], [True, False]), ValueError,
     r"scores has 3, is_positive has 2"),
    ("confusion_matrix labels", lambda: metrics.confusion_matrix([0, 12], [0, 1], 10),
     ValueError, r"labels.*\[0, 10\)"),
    # mutation
    ("mutation rate", lambda: mutation.gaussian_fuzzing(jax.random.key(0), _P, 1.5),
     ValueError, r"rate.*\(0, 1\]"),
    ("mutation operator", lambda: mutation.mutate_many(jax.random.key(0), _P, 2, "XYZ", 0.1),
     ValueError, r"operator.*NAI"),
    ("mutation layers", lambda: mutation.eligible_paths(_P, layers="attention"), ValueError,
     r"layers"),
    ("mutate_many n", lambda: mutation.mutate_many(jax.random.key(0), _P, 0, "NAI", 0.1),
     ValueError, r"n.*positive"),
    ("label_change_rate x", lambda: mutation.label_change_rate(
        lambda p, x: models.apply_model(_G, p, _S, x)[0],
        mutation.mutate_many(jax.random.key(0), _P, 2, "NAI", 0.5), np.zeros(64, np.float32),
        params=_P),
     ValueError, r"x must be a non-empty batch"),
    ("label_change_rate original_predictions", lambda: mutation.label_change_rate(
        lambda p, x: models.apply_model(_G, p, _S, x)[0],
        mutation.mutate_many(jax.random.key(0), _P, 2, "NAI", 0.5), _X, params=_P,
        original_predictions=np.zeros(3, np.int32)), ValueError,
     r"original_predictions"),
    # detection
    ("choose_threshold method", lambda: detection.choose_threshold(
        [0.1, 0.9], [False, True], method="f1"), ValueError, r"method.*equal_recall"),
    ("fit_combiner kind", lambda: detection.fit_combiner(
        "svm", np.zeros((4, 2)), np.array([0, 1, 0, 1], bool)), ValueError, r"kind.*qda"),
    ("train_detector lengths", lambda: detection.train_detector(
        jax.random.key(0), np.zeros((4, 3)), np.zeros(5, bool)), ValueError, r"is_wrong"),
    # attribution
    ("integrated_gradients n_steps", lambda: attribution.integrated_gradients(
        _SCORE, _X[0], n_steps=0), ValueError, r"n_steps.*positive"),
    ("integrated_gradients method", lambda: attribution.integrated_gradients(
        _SCORE, _X[0], method="simpson"), ValueError, r"method.*gausslegendre"),
    ("layer_conductance target", lambda: attribution.layer_conductance(
        _F, _H, _X, target=np.array([0, 1])), ValueError, r"target"),
    ("per_feature_map reduce", lambda: attribution.per_feature_map(
        jnp.zeros((2, 3, 3, 4)), reduce="median"), ValueError, r"reduce.*sum"),
    # robustness
    ("fgsm epsilon", lambda: robustness.fgsm(_LOGITS_FN, _X, _Y, -0.1), ValueError,
     r"epsilon.*non-negative"),
    ("corrupt corruption", lambda: robustness.corrupt(
        jax.random.key(0), np.zeros((2, 32, 32, 3), np.float32), "fog", 1), ValueError,
     r"corruption.*contrast"),
    ("corrupt severity", lambda: robustness.corrupt(
        jax.random.key(0), np.zeros((2, 32, 32, 3), np.float32), "contrast", 6), ValueError,
     r"severity.*5"),
    # rrr
    ("input_gradient_penalty annotation", lambda: losses.input_gradient_penalty(
        _LOGITS_FN, jnp.asarray(_X), jnp.zeros((4, 7, 7, 1))), ValueError, r"annotation"),
    ("find_another_explanation n_models", lambda: rrr.find_another_explanation(
        jax.random.key(0), _digits(), n_models=0, make_model=rrr.mlp_factory((8, 8, 1), 10),
        optimizer=optax.adam(1e-3)), ValueError, r"n_models.*positive"),
    # deliberative
    ("insecurities r", lambda: deliberative.insecurities(_F, _H, _X, r=1.5), ValueError,
     r"\br\b.*\(0, 1\)"),
    ("insecurities top_k", lambda: deliberative.insecurities(_F, _H, _X, top_k=11), ValueError,
     r"top_k.*10"),
    ("insecurities x rank", lambda: deliberative.insecurities(_F, _H, _X[0]), ValueError,
     r"x must be an image batch \(N, H, W, C\).*one image"),
    ("difficulty_score name", lambda: deliberative.difficulty_score("doubt"), ValueError,
     r"difficulty.*entropy"),
    ("top_fraction_mask r", lambda: deliberative.top_fraction_mask(jnp.zeros((2, 4, 4)), 0.0),
     ValueError, r"\br\b.*\(0, 1\)"),
    # reporting
    ("markdown_table rows", lambda: reporting.markdown_table(["a", "b"], [[1, 2, 3]]),
     ValueError, r"rows?.*columns?|header"),
]


# ---------------------------------------------------------------------------
# More bad inputs (issue 17): the contract's classifier, every module.

_CLF = models.classifier(jax.random.key(0), "cnn", input_shape=(8, 8, 1), num_classes=10,
                         widths=(4,), dense=8)
_XB = np.zeros((4, 8, 8, 1), np.float32)
_YB = np.zeros(4, np.int32)
_L = np.zeros((4, 10), np.float32)
_W = np.array([True, False, True, False])
_S4 = np.array([0.1, 0.2, 0.3, 0.4])
_LAYER = _CLF.layers[0]
K = jax.random.key(0)


def _muts():
  return mutation.mutate_many(K, _CLF.params, 2, "NAI", 0.5)


def _ds():
  return data.load("digits", "train")


class _SoftmaxModule(nnx.Module):
  """A model that ends in a softmax (probabilities, not logits)."""

  def __init__(self, rngs):
    self.d = nnx.Linear(64, 10, rngs=rngs)

  def __call__(self, x):
    return jax.nn.softmax(self.d(x.reshape(x.shape[0], -1)))


def _load_registered(loader):
  """data.load of ``loader`` registered under a throwaway name, unregistered after."""
  data.register_dataset("_trial12_tuple", loader, overwrite=True)
  try:
    return data.load("_trial12_tuple")
  finally:
    data.DATASETS.pop("_trial12_tuple", None)


def _damaged_npz(kind):
  """A folder with an mnist.npz that lacks the test split ('keys') or is a
  truncated archive ('truncated'); its path."""
  import tempfile
  folder = tempfile.mkdtemp()
  path = os.path.join(folder, "mnist.npz")
  np.savez(path, x_train=np.zeros((2, 28, 28), np.uint8), y_train=np.zeros(2, np.uint8))
  if kind == "truncated":
    raw = pathlib.Path(path).read_bytes()
    pathlib.Path(path).write_bytes(raw[:len(raw) // 2])
  return folder


def _damaged_weights():
  """A models.save folder whose weights/_METADATA is gone: its path."""
  import tempfile
  folder = os.path.join(tempfile.mkdtemp(), "m")
  models.save(folder, _CLF)
  os.remove(os.path.join(folder, "weights", "_METADATA"))
  return folder


def _linen_dense():
  import flax.linen as nn

  class Dense(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
      return nn.Dense(10)(x)
  return Dense()


def _make_page(values):
  """reporting.make_page of a template with {{NAME}} and {{OTHER}}, filled
  with ``values``."""
  import tempfile
  folder = pathlib.Path(tempfile.mkdtemp())
  (folder / "t.md").write_text("{{NAME}} {{OTHER}}\n")
  (folder / "r.json").write_text("{}")
  return reporting.make_page(str(folder / "t.md"), str(folder / "p.md"), str(folder / "r.json"),
                             lambda results: values)


def _linen_dropout(**options):
  import flax.linen as nn

  class Drop(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
      return nn.Dense(4)(nn.Dropout(0.5, deterministic=not train)(x))
  module = Drop()
  return models.from_linen(module, module.init(K, jnp.zeros((1, 8))), input_shape=(8,),
                           **options)


def _meta_without(key):
  """A models.save folder of _CLF whose model.json lacks ``key``: its path."""
  import tempfile
  folder = os.path.join(tempfile.mkdtemp(), "m")
  models.save(folder, _CLF)
  meta = json.loads(pathlib.Path(folder, "model.json").read_text())
  meta.pop(key)
  pathlib.Path(folder, "model.json").write_text(json.dumps(meta))
  return folder


class _Seq(nnx.Module):
  def __init__(self):
    self.a = nnx.Linear(8, 6, rngs=nnx.Rngs(0))
    self.b = nnx.Linear(6, 4, rngs=nnx.Rngs(1))

  def __call__(self, x):
    return self.b(jax.nn.relu(self.a(x)))


class _OwnDrop(nnx.Module):
  def __init__(self):
    self.a = nnx.Linear(8, 4, rngs=nnx.Rngs(0))
    self.d = nnx.Dropout(0.5, rngs=nnx.Rngs(dropout=1))

  def __call__(self, x):
    return self.a(self.d(x))


def _register_none_builder():
  models.register_model("_trial12_none", lambda input_shape, num_classes, rngs: None,
                        overwrite=True)
  try:
    return models.classifier(K, "_trial12_none", input_shape=(4,), num_classes=3)
  finally:
    models.MODELS.pop("_trial12_none", None)


_NAN_X = np.where(np.arange(8)[:, None, None, None] == 0, np.nan,
                  np.random.default_rng(1).random((8, 2, 2, 2))).astype(np.float32)


def _lin_model(z):  # a linear 3-class model of (N, 2, 2, 2) inputs
  return z.reshape(len(z), -1) @ jnp.asarray(np.random.default_rng(0).normal(size=(8, 3)),
                                               jnp.float32)


MORE_BAD_INPUTS = [

 # attribution (batched on the contract)
 ("batched_.saliency target", lambda: batched_.saliency(_CLF, _XB, target=10), ValueError, r"target.*\[0, 10\)"),
 ("batched_.saliency target str", lambda: batched_.saliency(_CLF, _XB, target="pred"), ValueError, r"target.*predicted"),
 ("batched_.saliency target length", lambda: batched_.saliency(_CLF, _XB, target=np.zeros(3, int)), ValueError, r"target.*4"),
 ("batched_.saliency x rank", lambda: batched_.saliency(_CLF, np.float32(1.0), target=0), ValueError, r"\bx\b"),
 ("batched_.saliency clf", lambda: batched_.saliency("model", _XB, target=0), TypeError, r"clf"),
 ("batched_.integrated_gradients baselines", lambda: batched_.integrated_gradients(_CLF, _XB, target=0, baselines=np.zeros((3, 3))), ValueError, r"baselines"),
 ("batched_.integrated_gradients n_steps", lambda: batched_.integrated_gradients(_CLF, _XB, target=0, n_steps=-2), ValueError, r"n_steps.*positive"),
 ("batched_.integrated_gradients option", lambda: batched_.integrated_gradients(_CLF, _XB, target=0, nsteps=5), TypeError, r"nsteps"),
 ("batched_.layer_conductance layer", lambda: batched_.layer_conductance(_CLF, _XB, target=0, layer="conv_9"), ValueError, r"layer.*conv"),
 ("batched_.layer_conductance empty layers", lambda: batched_.layer_conductance(_CLF, _XB, target=0, layer=[]), ValueError, r"layer"),
 ("batched_.layer_conductance method", lambda: batched_.layer_conductance(_CLF, _XB, target=0, layer=_LAYER, method="simpson"), ValueError, r"method"),
 ("batched_.smoothgrad key", lambda: batched_.smoothgrad(None, _CLF, _XB, target=0), TypeError, r"key.*PRNG"),
 ("batched_.smoothgrad n_samples", lambda: batched_.smoothgrad(K, _CLF, _XB, target=0, n_samples=0), ValueError, r"n_samples.*positive"),
 ("batched_.smoothgrad stdevs", lambda: batched_.smoothgrad(K, _CLF, _XB, target=0, stdevs=-1.0), ValueError, r"stdevs"),
 ("batched_.grad_cam layer rank", lambda: batched_.grad_cam(_CLF, _XB, target=0, layer="conv_9"), ValueError, r"layer"),
 ("batched_.neuron_conductance neuron_index", lambda: batched_.neuron_conductance(_CLF, _XB, target=0, layer=_LAYER, neuron_index=(99, 0, 0)), ValueError, r"neuron_index"),
 ("batched_.compute_convergence_delta rows", lambda: batched_.compute_convergence_delta(_CLF, np.zeros((3, 8, 8, 1)), _XB, target=0), ValueError, r"one row per example; x has 4, attributions has 3"),
 ("batched_.saliency NaN x", lambda: batched_.saliency(_CLF, np.full((2, 8, 8, 1), np.nan, np.float32), target=0), ValueError, r"x holds NaN.*indices 0, 1"),
 ("class_score_fn logits_fn", lambda: attribution.class_score_fn("f", 0)(jnp.zeros((8, 8, 1))), TypeError, r"logits_fn"),
 ("gradient score_fn", lambda: attribution.gradient("f", jnp.zeros(3)), TypeError, r"score_fn"),
 ("gradient score_fn not scalar", lambda: attribution.gradient(lambda x: x, jnp.zeros(3)), ValueError, r"score_fn must return a scalar"),
 ("integration_points method", lambda: attribution.integration_points("simpson", 5), ValueError, r"method"),
 ("integration_points n", lambda: attribution.integration_points("riemann_right", 0), ValueError, r"n_steps.*positive"),
 ("upsample size", lambda: attribution.upsample(jnp.zeros((2, 4, 4)), (0, 8)), ValueError, r"size|shape"),
 ("layer_conductance swapped", lambda: attribution.layer_conductance(*_CLF.split(_LAYER)[::-1], _XB, target=0), ValueError, r"features_fn.*head_fn"),
 ("layer_conductance head_fn", lambda: attribution.layer_conductance(_CLF.split(_LAYER)[0], None, _XB, target=0), TypeError, r"head_fn"),
 ("second_order_attribution target", lambda: attribution.second_order_attribution(*_CLF.split(_LAYER), _XB, target=12), ValueError, r"target.*\[0, 10\)"),
 # data
 ("data.load source", lambda: data.load("digits", "train", source="ftp"), ValueError, r"source"),
 ("data.paper_split name", lambda: data.paper_split("imagenet"), ValueError, r"dataset"),
 ("data.split_dataset counts", lambda: data.split_dataset(_ds(), (10, 10**6), seed=0), ValueError, r"counts"),
 ("data.epoch_permutation n", lambda: data.epoch_permutation(-1, 0, 0), ValueError, r"\bn\b"),
 ("data.num_batches batch_size", lambda: data.num_batches(10, 0, False), ValueError, r"batch_size"),
 ("data.to_float dtype", lambda: data.to_float(np.array(["a"])), (TypeError, ValueError), r"x|dtype"),
 ("data.register_dataset taken", lambda: data.register_dataset("digits", lambda *a, **k: None), ValueError, r"digits.*already"),
 ("data.Dataset labels", lambda: data.Dataset(np.zeros((2, 3)), np.array([0, 5]), 2, ("a", "b")), ValueError, r"labels|y"),
 ("data.Dataset class_names", lambda: data.Dataset(np.zeros((2, 3)), np.array([0, 1]), 2, ("a",)), ValueError, r"class_names"),
 ("data.random_crop_flip key", lambda: data.random_crop_flip(None, jnp.zeros((8, 8, 3))), TypeError, r"key"),
 ("data.augment_cifar rank", lambda: data.augment_cifar(K, jnp.zeros((8, 8, 3))), ValueError, r"images"),
 # models
 ("models.create_model option", lambda: models.create_model(K, "mlp", input_shape=(8, 8, 1), num_classes=10, hiden=(5,)), ValueError, r"model 'mlp'.*hiden"),
 ("models.create_model key None", lambda: models.create_model(None, "mlp", input_shape=(8, 8, 1), num_classes=10), TypeError, r"key.*PRNG"),
 ("models.classifier input_shape", lambda: models.classifier(K, "cnn", input_shape=(8, 8), num_classes=10), ValueError, r"input_shape"),
 ("models.load path", lambda: models.load("/nonexistent/m"), FileNotFoundError, r"model\.json|/nonexistent"),
 ("models.save clf", lambda: models.save("/tmp/x_bad_save", "model"), TypeError, r"clf|Classifier"),
 ("models.as_classifier", lambda: models.as_classifier("clf", 3), TypeError, r"clf"),
 ("models.from_functions apply_fn", lambda: models.from_functions(None, {}), TypeError, r"apply_fn"),
 ("models.from_functions splits", lambda: models.from_functions(lambda p, x: x, {}, splits={"a": 3}), TypeError, r"splits\['a'\]"),
 ("models.from_nnx module", lambda: models.from_nnx("module"), TypeError, r"module"),
 ("models.from_nnx layers", lambda: models.from_nnx(models.create_model(K, "mlp", input_shape=(4,), num_classes=2), layers=["nope"]), ValueError, r"layers|nope"),
 ("Classifier.split layer", lambda: _CLF.split("conv_9"), ValueError, r"layer must be one of"),
 ("models.register_model builder", lambda: models.register_model("xx_bad", 3), TypeError, r"builder"),
 # training
 ("TrainConfig epochs", lambda: training.TrainConfig(dataset="digits", model="mlp", epochs=0).validate(), ValueError, r"epochs.*positive"),
 ("TrainConfig optimizer", lambda: training.TrainConfig(dataset="digits", model="mlp", optimizer="lbfgs").validate(), ValueError, r"optimizer.*sgd"),
 ("TrainConfig loss", lambda: training.TrainConfig(dataset="digits", model="mlp", loss="hinge").validate(), ValueError, r"loss.*cross_entropy"),
 ("TrainConfig augment", lambda: training.TrainConfig(dataset="digits", model="mlp", augment="mixup").validate(), ValueError, r"augment"),
 ("TrainConfig dataset", lambda: training.TrainConfig(dataset="digitz", model="mlp").validate(), ValueError, r"dataset.*digits"),
 ("make_optimizer name", lambda: training.make_optimizer("lbfgs", 0.1), ValueError, r"optimizer|name"),
 ("fit batch_size", lambda: training.fit(training.create_train_state(K, _CLF, optax.sgd(0.1)), _ds(), train_step=None, epochs=1, batch_size=10**6), ValueError, r"batch_size.*at most"),
 ("fit weights size", lambda: training.fit(training.create_train_state(K, models.classifier(K, "mlp", input_shape=(8, 8, 1), num_classes=10), optax.sgd(0.1)), _ds(), train_step=training.make_train_step(losses.make_weighted_loss(np.eye(5)), optax.sgd(0.1)), epochs=1, batch_size=32, progress=False), ValueError, r"loss is for 5 classes.*10"),
 ("evaluate ds", lambda: training.evaluate(_CLF, (_XB, _YB)), TypeError, r"ds must be a data.Dataset"),
 ("evaluate labels", lambda: training.evaluate(_CLF, data.Dataset(_XB, np.array([0, 1, 2, 11]), 12, tuple("abcdefghijkl"))), ValueError, r"labels.*\[0, 10\)"),
 ("create_train_state key", lambda: training.create_train_state(None, _CLF, optax.sgd(0.1)), TypeError, r"key"),
 ("check_model_input shape", lambda: training.check_model_input(_CLF, data.Dataset(np.zeros((2, 5)), np.array([0, 1]), 2, ("a", "b"), name="toy")), ValueError, r"dataset .toy.*shape the model was built for.*\(8, 8, 1\).*\(2, 5\)"),
 # losses
 ("make_loss name", lambda: losses.make_loss("hinge"), ValueError, r"loss.*cross_entropy"),
 ("make_loss option", lambda: losses.make_loss("label_smoothing", alhpa=0.5), ValueError, r"alhpa.*alpha|alpha.*alhpa"),
 ("make_loss weighted needs weights", lambda: losses.make_loss("weighted"), ValueError, r"weights"),
 ("weighted_targets scale", lambda: losses.weighted_targets(np.eye(3), target="softmax", scale=0), ValueError, r"scale.*positive"),
 ("weighted_cross_entropy size", lambda: losses.weighted_cross_entropy(jnp.zeros((2, 4)), jnp.zeros(2, int), np.eye(3)), ValueError, r"weights must be 4x4"),
 ("make_weighted_loss logits size", lambda: losses.make_weighted_loss(np.eye(3))(jnp.zeros((2, 4)), {"y": jnp.zeros(2, int)}), ValueError, r"weights is 3x3.*4"),
 ("make_certainty_loss lam", lambda: losses.make_certainty_loss(-1.0), ValueError, r"lam"),
 ("register_loss taken", lambda: losses.register_loss("cross_entropy", lambda **k: None), ValueError, r"cross_entropy.*already"),
 # similarity
 ("check_weight_matrix NaN", lambda: similarity.check_weight_matrix("weights", np.full((2, 2), np.nan)), ValueError, r"weights.*finite"),
 ("from_ratings shape", lambda: similarity.from_ratings(np.ones((3, 4))), ValueError, r"ratings|square"),
 ("resolve_synset name", lambda: similarity.resolve_synset(3), (TypeError, ValueError), r"name|synset"),
 ("explicability_matrix kind", lambda: similarity.explicability_matrix(np.eye(3), np.eye(4)), ValueError, r"matri|shape"),
 # metrics
 ("top1_accuracy labels", lambda: metrics.top1_accuracy(_L, np.zeros(3, int)), ValueError, r"labels"),
 ("top1_accuracy labels range", lambda: metrics.top1_accuracy(_L, np.array([0, 1, 2, 10])), ValueError, r"labels.*\[0, 10\)"),
 ("aupr NaN", lambda: metrics.aupr([np.nan, 0.2], [True, False]), ValueError, r"scores holds NaN"),
 ("fpr_at_tpr tpr", lambda: metrics.fpr_at_tpr(_S4, _W, 1.5), ValueError, r"tpr"),
 ("selective_accuracy coverage", lambda: metrics.selective_accuracy(_S4, _W, 0.0 - 1), ValueError, r"coverage"),
 ("risk_coverage_curve is_wrong", lambda: metrics.risk_coverage_curve(_S4, np.array([0, 1, 2, 0])), ValueError, r"is_wrong must be boolean or hold only 0 and 1"),
 ("mean_mistake_similarity none", lambda: metrics.mean_mistake_similarity(np.array([0, 1]), np.array([0, 1]), np.eye(2)), ValueError, r"no mistakes"),
 ("hard_soft_scores empty", lambda: metrics.hard_soft_scores({}, np.array([0, 1]), np.eye(2)), ValueError, r"preds|model"),
 ("bootstrap level", lambda: metrics.bootstrap_auroc_difference(K, _S4, _S4, _W, level=0.0 - 1), ValueError, r"level"),
 # detection
 ("choose_threshold target_recall", lambda: detection.choose_threshold(_S4, _W, method="recall"), ValueError, r"target_recall"),
 ("choose_threshold extra recall", lambda: detection.choose_threshold(_S4, _W, target_recall=0.9), ValueError, r"target_recall applies"),
 ("train_detector normalize", lambda: detection.train_detector(K, np.zeros((4, 3)), _W, normalize="minmax"), ValueError, r"normalize"),
 ("train_detector class_weight", lambda: detection.train_detector(K, np.zeros((4, 3)), _W, class_weight="auto"), ValueError, r"class_weight"),
 ("fit_combiner nn key", lambda: detection.fit_combiner("nn", np.zeros((4, 2)), _W), ValueError, r"key is required"),
 ("scores.msp temperature", lambda: detection.scores.msp(_L, temperature=0.0), ValueError, r"temperature"),
 ("scores.logit_scores names", lambda: detection.scores.logit_scores(_L, names=("odin",)), ValueError, r"names.*msp"),
 ("scores.fit_mahalanobis labels", lambda: detection.scores.fit_mahalanobis(np.zeros((4, 3)), np.zeros(3, int), 2), ValueError, r"labels"),
 ("scores.mahalanobis features", lambda: detection.scores.mahalanobis(detection.scores.fit_mahalanobis(np.random.default_rng(0).normal(size=(6, 3)), np.array([0, 1] * 3), 2), np.zeros((2, 4))), ValueError, r"features"),
 ("score_table scores", lambda: detection.score_table([_S4], _W), ValueError, r"scores must be a non-empty mapping"),
 ("compare_to_baseline baseline", lambda: detection.compare_to_baseline(K, {"a": _S4}, _W, baseline="msp"), ValueError, r"baseline"),
 # mutation
 ("make_mutants key", lambda: mutation.make_mutants(None, _CLF, 2, "NAI", 0.5), TypeError, r"key.*PRNG"),
 ("make_mutants n", lambda: mutation.make_mutants(K, _CLF, 0, "NAI", 0.5), ValueError, r"\bn\b.*positive"),
 ("mutant_predictions x", lambda: mutation.mutant_predictions(_CLF, _muts(), np.zeros((4, 5), np.float32)), ValueError, r"x|shape"),
 ("mutant_predictions mutants", lambda: mutation.mutant_predictions(_CLF, {"a": 1}, _XB), ValueError, r"mutants"),
 ("label_change_rate NaN", lambda: mutation.label_change_rate(_CLF, _muts(), np.full((2, 8, 8, 1), np.nan, np.float32)), ValueError, r"NaN.*0, 1|indices"),
 ("NAI bias name", lambda: mutation.neuron_activation_inverse(K, {"conv": {"w": jnp.ones((3, 3, 2, 4)), "offset": jnp.ones(4)}}, 0.5), ValueError, r"offset.*bias"),
 ("gaussian_fuzzing mode", lambda: mutation.gaussian_fuzzing(K, _CLF.params, 0.1, mode="mult"), ValueError, r"mode"),
 ("gaussian_fuzzing sigma", lambda: mutation.gaussian_fuzzing(K, _CLF.params, 0.1, sigma=-1.0), ValueError, r"sigma.*positive"),
 ("sprt_detect alpha", lambda: mutation.sprt_detect(np.zeros((3, 2), bool), 0.1, alpha=2.0), ValueError, r"alpha"),
 ("sprt_detect threshold", lambda: mutation.sprt_detect(np.zeros((3, 2), bool), 1.5), ValueError, r"threshold"),
 ("accuracy_gate y", lambda: mutation.accuracy_gate(_CLF, _XB, np.zeros(3, int)), ValueError, r"\by\b|labels"),
 # robustness
 ("gaussian_noise stddev", lambda: robustness.gaussian_noise(K, _XB, -0.1), ValueError, r"stddev.*non-negative"),
 ("pgd steps", lambda: robustness.pgd(K, _CLF.logits, _XB, _YB, 0.1, steps=0), ValueError, r"steps.*positive"),
 ("corrupt key", lambda: robustness.corrupt(0, np.zeros((2, 32, 32, 3), np.float32), "contrast", 1), TypeError, r"key.*PRNG"),
 ("corruption_suite severities", lambda: robustness.corruption_suite(K, np.zeros((2, 32, 32, 3), np.float32), severities=(0,)), ValueError, r"severit"),
 ("accuracy_under perturb key", lambda: robustness.accuracy_under(_CLF.logits, _XB, _YB, perturb=lambda k, x, y: x), ValueError, r"key is required"),
 ("defocus_kernel radius", lambda: robustness.defocus_kernel(-1.0, 0.1), ValueError, r"radius"),
 # rrr
 ("explanation_mask fraction", lambda: rrr.explanation_mask(jnp.zeros((2, 4)), 1.5), ValueError, r"cutoff.*\[0, 1\]"),
 ("mlp_factory hidden", lambda: rrr.mlp_factory((8, 8, 1), 10, hidden=(0,)), ValueError, r"hidden"),
 ("find_another_explanation key", lambda: rrr.find_another_explanation(None, _ds(), n_models=1, make_model=rrr.mlp_factory((8, 8, 1), 10), optimizer=optax.adam(1e-3)), TypeError, r"key"),
 # deliberative
 ("attribution_maps method", lambda: deliberative.attribution_maps(lambda x: x, lambda h: h.mean(axis=(1, 2)), jnp.ones((1, 4, 4, 3)), top_k=2, method="hessian"), ValueError, r"method must be one of"),
 ("class_ambiguities top_k", lambda: deliberative.class_ambiguities(jnp.zeros((2, 4, 4, 10)), top=0), ValueError, r"top"),
 ("split_hardness_output size", lambda: deliberative.split_hardness_output(jnp.zeros((2, 10)), 10), ValueError, r"11|num_classes"),
 ("make_hardness_loss num_classes", lambda: deliberative.make_hardness_loss(0), ValueError, r"num_classes.*positive"),
 ("hesitancy logits", lambda: deliberative.hesitancy(jnp.zeros((2, 1))), ValueError, r"logits|class"),
 ("attribution_maps ig_space", lambda: deliberative.attribution_maps(_F, _H, _X, top_k=2, method="integrated_gradients", ig_space="pixel"), ValueError, r"ig_space must be one of.*layer.*input"),
 ("attribution_maps second_order", lambda: deliberative.attribution_maps(_F, _H, _X, top_k=2, method="gradient_hessian", second_order="abs"), ValueError, r"second_order must be one of.*signed.*absolute"),
 ("attribution_maps n_steps", lambda: deliberative.attribution_maps(_F, _H, _X, top_k=2, method="integrated_gradients", n_steps=0), ValueError, r"n_steps.*positive"),
 ("make_hardness_loss predictor_loss", lambda: deliberative.make_hardness_loss(10, predictor_loss="mse"), ValueError, r"predictor_loss must be one of.*bce.*original"),
 ("make_hardness_loss bonus", lambda: deliberative.make_hardness_loss(10, predictor_loss="original", bonus=1.5), ValueError, r"bonus"),
 # RRR protocol options
 ("find_another_explanation lam length", lambda: rrr.find_another_explanation(K, _ds(), n_models=3, make_model=rrr.mlp_factory((8, 8, 1), 10), optimizer=optax.adam(1e-3), lam=(0.0, 1.0)), ValueError, r"lam must be one number or a sequence of n_models=3.*got 2"),
 ("find_another_explanation lam negative", lambda: rrr.find_another_explanation(K, _ds(), n_models=2, make_model=rrr.mlp_factory((8, 8, 1), 10), optimizer=optax.adam(1e-3), lam=(0.0, -1.0)), ValueError, r"lam\[1\]"),
 ("find_another_explanation mask_classes", lambda: rrr.find_another_explanation(K, _ds(), n_models=1, make_model=rrr.mlp_factory((8, 8, 1), 10), optimizer=optax.adam(1e-3), mask_classes="min"), ValueError, r"mask_classes must be one of"),
 ("mlp init", lambda: models.create_model(K, "mlp", input_shape=(4,), num_classes=2, init="xavier"), ValueError, r"init must be one of.*he.*normal"),
 ("mlp init_stddev", lambda: models.create_model(K, "mlp", input_shape=(4,), num_classes=2, init="normal", init_stddev=0.0), ValueError, r"init_stddev.*positive"),
 ("newsgroups max_features", lambda: data.rrr.newsgroups("train", max_features=0), ValueError, r"max_features.*positive"),
 # Olmo et al.'s target form
 ("weighted_targets authors without kind", lambda: losses.weighted_targets(np.eye(3) + 1, target="authors"), ValueError, r"target='authors' needs kind="),
 ("weighted_targets kind without authors", lambda: losses.weighted_targets(np.eye(3), target="l1", kind="chl"), ValueError, r"kind= is only for target='authors'"),
 ("as_stored_by_authors scaled CHL", lambda: similarity.as_stored_by_authors("chl", np.eye(3)), ValueError, r"raw CHL ratings.*largest entry is 1"),
 ("as_stored_by_authors IHL rows", lambda: similarity.as_stored_by_authors("ihl", np.ones((3, 3))), ValueError, r"row-stochastic IHL.*row sums"),
 ("as_stored_by_authors kind", lambda: similarity.as_stored_by_authors("wordnet", np.eye(3)), ValueError, r"kind must be one of.*ihl.*chl.*ekl"),
 ("explicability_losses authors name", lambda: metrics.explicability_losses(np.zeros((2, 3)), np.array([0, 1]), {"wordnet": np.eye(3)}, target="authors"), ValueError, r"kind from its name.*'wordnet'"),
 # trial 32: crashes and silent wrong answers, now refused
 ("Classifier.logits empty batch", lambda: _CLF.logits(np.zeros((0, 8, 8, 1), np.float32)), ValueError, r"x must hold at least one example.*\(0, 8, 8, 1\)"),
 ("Classifier.apply empty batch", lambda: _CLF.apply(np.zeros((0, 8, 8, 1), np.float32)), ValueError, r"x must hold at least one example"),
 ("Classifier.split features empty batch", lambda: _CLF.split(_LAYER)[0](np.zeros((0, 8, 8, 1), np.float32)), ValueError, r"x must hold at least one example"),
 ("training.fit callbacks", lambda: _fit_with_callbacks([training.Callback(), object()]), TypeError, r"callbacks\[1\] must be a training.Callback.*got object.*on_train_begin"),
 ("training.fit callbacks not a sequence", lambda: _fit_with_callbacks(training.Callback()), TypeError, r"callbacks must be a sequence.*got Callback"),
 ("make_mutants accuracy_fn scalar", lambda: mutation.make_mutants(K, _CLF, 3, "GF", 0.1, accuracy_fn=lambda m: 0.9), ValueError, r"accuracy_fn must return one accuracy per stacked model.*\(1,\).*got float 0.9"),
 ("make_mutants accuracy_fn shape", lambda: mutation.make_mutants(K, _CLF, 3, "GF", 0.1, accuracy_fn=lambda m: np.ones(7)), ValueError, r"accuracy_fn must return .*shape \(1,\).*got shape \(7,\)"),
 ("make_mutants accuracy_fn not callable", lambda: mutation.make_mutants(K, _CLF, 3, "GF", 0.1, accuracy_fn=0.9), TypeError, r"accuracy_fn must be a function.*got float"),
 ("data.batches start", lambda: list(data.batches(_ds(), 32, start=-1)), ValueError, r"start must be a non-negative integer; got -1"),
 ("data.batches seed", lambda: list(data.batches(_ds(), 32, shuffle=True, seed=-1)), ValueError, r"seed must be a non-negative integer; got -1"),
 ("data.epoch_permutation seed", lambda: data.epoch_permutation(10, -1, 0), ValueError, r"seed must be a non-negative integer; got -1"),
 ("data.paper_split seed", lambda: data.paper_split("digits", seed=-1), ValueError, r"seed must be a non-negative integer; got -1"),
 ("data.split_dataset seed str", lambda: data.split_dataset(_ds(), [0.5, 0.5], seed="0"), ValueError, r"seed must be a non-negative integer; got '0'"),
 ("data.split_indices seed", lambda: data.split_indices(10, [5, 5], seed=-2), ValueError, r"seed must be a non-negative integer; got -2"),
 ("TrainConfig seed", lambda: training.TrainConfig(seed=-3).validate(), ValueError, r"seed must be a non-negative integer; got -3"),
 ("FitConfig seed", lambda: training.FitConfig(epochs=1, batch_size=8, seed=-3), ValueError, r"seed must be a non-negative integer; got -3"),
 ("data.split_dataset mixed sizes", lambda: data.split_dataset(_ds(), [0.5, 700], seed=0), ValueError, r"sizes must be all counts .* or all fractions.*not a mix; got \[0.5, 700\]"),
 ("data.split_indices fractions sum", lambda: data.split_indices(100, [0.3, 0.3, 0.3], seed=0), ValueError, r"fractions must sum to 1, each non-negative; got \[0.3, 0.3, 0.3\] \(sum 0.9\)"),
 ("data.split_dataset fractions sum", lambda: data.split_dataset(_ds(), [0.5, 0.6], seed=0), ValueError, r"sum to 1.*\(sum 1.1\)"),
 ("data.augment_cifar NCHW", lambda: data.augment_cifar(K, np.zeros((2, 3, 32, 32), np.float32)), ValueError, r"images must be channel-last \(N, H, W, C\); got shape \(2, 3, 32, 32\)"),
 # Issue 32, fixes B: perturbation sizes and baselines in the images' units, labels that
 # would be ignored, masks, a softmax model, momentum, Grad-CAM's layer, thresholds,
 # p-values, NaN maps, bool flags and a Dataset passed as a batch.
 ("batched_.smoothgrad stdevs 0..255", lambda: batched_.smoothgrad(K, _CLF, _XB, target=0, stdevs=25.5), ValueError, r"stdevs is in the images' units, \[0, 1\].*got 25.5.*25.5 / 255"),
 ("attribution.smoothgrad stdevs sequence", lambda: attribution.smoothgrad(K, attribution.class_score_fn(_CLF.logits, 0), _XB[0], stdevs=[0.1, 0.2]), ValueError, r"stdevs must be one number"),
 ("batched_.integrated_gradients baselines 255", lambda: batched_.integrated_gradients(_CLF, _XB, target=0, baselines=255.0), ValueError, r"baselines must be in the images' units, \[0, 1\].*got 255"),
 ("robustness.gaussian_noise stddev 0..255", lambda: robustness.gaussian_noise(K, _XB, 25.0), ValueError, r"stddev is in the images' units"),
 ("losses.input_gradients labels ignored", lambda: losses.input_gradients(_CLF.logits, _XB, classes="sum", labels=_YB), ValueError, r"labels are read only with classes='true'"),
 ("losses.input_gradients labels range", lambda: losses.input_gradients(_CLF.logits, _XB, classes="true", labels=np.array([0, 1, 2, 10])), ValueError, r"labels"),
 ("mutation.sprt_detect class ids", lambda: mutation.sprt_detect(np.array([[0, 3], [2, 1]]), 0.1), ValueError, r"label_changes"),
 ("models.from_nnx softmax output", lambda: models.from_nnx(_SoftmaxModule(nnx.Rngs(0)), input_shape=(8, 8, 1), num_classes=10), ValueError, r"must return logits: drop the final softmax"),
 ("training.make_optimizer momentum", lambda: training.make_optimizer("sgd", optax.constant_schedule(0.1), momentum=1.5), ValueError, r"momentum must be a number in \[0, 1\).*got 1.5"),
 ("TrainConfig momentum", lambda: training.TrainConfig(momentum=1.0).validate(), ValueError, r"momentum must be a number in \[0, 1\).*got 1.0"),
 ("batched_.grad_cam dense layer", lambda: batched_.grad_cam(_CLF, _XB, target=0, layer="dense"), ValueError, r"layer 'dense' must have spatial maps \(N, H, W, C\)"),
 ("detection.score_row threshold NaN", lambda: detection.score_row(_S4, _W, threshold=float("nan")), ValueError, r"threshold must be a finite number; got nan"),
 ("stats.verdict p_value percentage", lambda: stats.verdict(5.0, 0.1), ValueError, r"p_value must be a probability in \[0, 1\]; got 5.0 \(a percentage\? divide by 100\)"),
 ("ev.sparseness NaN maps", lambda: ev.sparseness(np.full((2, 8, 8, 1), np.nan)), ValueError, r"attributions holds NaN"),
 ("batched_.saliency absolute str", lambda: batched_.saliency(_CLF, _XB, target=0, absolute="no"), ValueError, r"absolute must be True or False; got 'no'"),
 ("batched_.saliency Dataset as x", lambda: batched_.saliency(_CLF, _ds(), target=0), ValueError, r"x must be .*got a Dataset: pass ds.x"),
 # User functions of the wrong shape are named with the form they must have.
 ("make_train_step loss_fn two args", lambda: training.make_train_step(lambda logits, batch: logits[:, 0], optax.sgd(0.1)), TypeError, r"loss_fn must be a function loss_fn\(logits, batch, params\).*cannot be called so"),
 ("accuracy_under perturb one arg", lambda: robustness.accuracy_under(_CLF.logits, _XB, _YB, perturb=lambda x: x, key=K), TypeError, r"perturb must be a function perturb\(key, x_batch, y_batch\)"),
 ("from_functions apply_fn one arg", lambda: models.from_functions(lambda p: p, np.ones((64, 10), np.float32), input_shape=(8, 8, 1), num_classes=10), TypeError, r"apply_fn must be a function apply_fn\(params, x\) -> logits"),
 ("from_functions apply_fn swapped", lambda: models.from_functions(lambda x, p: x.reshape(x.shape[0], -1) @ p, {"w": np.ones((64, 10), np.float32)}, input_shape=(8, 8, 1), num_classes=10), ValueError, r"is it called as apply_fn\(params, x\), params first\?"),
 ("stats.paired_bootstrap array statistic", lambda: stats.paired_bootstrap(K, lambda a, b: a - b, [_S4, _S4]), ValueError, r"statistic must return one number.*shape \(4,\)"),
 ("deliberative.score_insecurity P mismatch", lambda: deliberative.score_insecurity(np.ones((8, 8), bool), np.ones(3, bool), np.zeros((4, 2), int)), ValueError, r"shared_slots must have one flag per part, shape \(4,\)"),
 ("deliberative.score_insecurity float mask", lambda: deliberative.score_insecurity(np.full((8, 8), 0.3), np.ones(4, bool), np.zeros((4, 2), int)), ValueError, r"mask must be boolean or hold only 0 and 1"),
 ("deliberative.score_insecurity centre outside", lambda: deliberative.score_insecurity(np.ones((8, 8), bool), np.ones(2, bool), np.array([[1, 1], [9, 2]])), ValueError, r"part_centers must lie inside the mask's \(8, 8\) grid"),
 ("models.classifier channel-first input_shape", lambda: models.classifier(K, "cnn", input_shape=(1, 8, 8), num_classes=10), ValueError, r"input_shape must be channel-last \(H, W, C\); got \(1, 8, 8\).*pass \(8, 8, 1\)"),
 ("ev.model_parameter_randomisation score not map", lambda: ev.model_parameter_randomisation(K, lambda m, x, t: m.logits(x)[:, 0], _CLF, _XB, target=0), ValueError, r"explanation_func must return attribution maps \(N, \.\.\.\).*returned shape \(4,\)"),
 ("ev.sensitivity_max explanation two args", lambda: ev.sensitivity_max(K, lambda m, x: x, _CLF, _XB, target=0), TypeError, r"explanation_func must be a function explanation_func\(model, x, target\)"),
 ("AuditConfig fgsm 0..255", lambda: __import__("explicable_jax.app.audit", fromlist=["AuditConfig"]).AuditConfig(dataset="digits", fgsm=(8.0,)).validate(), ValueError, r"fgsm is in the images' units.*8.0 / 255"),
 ("viz.attribution_overlay 0..255 floats", lambda: __import__("explicable_jax.viz", fromlist=["viz"]).attribution_overlay(np.full((8, 8), 200.0), np.ones((8, 8))), ValueError, r"image must be float images in \[0, 1\].*0..255 pixels stored as floats"),
 # Issue 32, the fresh trial's classes (trial 33): whole floats for ints, one string for a
 # list of names, duplicate class names, unchecked containers and functions, ranges, NaN.
 ("metrics.confusion_matrix num_classes float", lambda: metrics.confusion_matrix(_YB, _YB, 10.0), ValueError, r"num_classes must be a positive integer; got 10.0 \(an int: pass 10\)"),
 ("data.batches batch_size float", lambda: list(data.batches(_ds(), 32.0)), ValueError, r"batch_size must be a positive integer; got 32.0"),
 ("robustness.corrupt severity float", lambda: robustness.corrupt(K, _XB, "brightness", 2.0), ValueError, r"severity must be one of 1, 2, 3, 4, 5; got 2.0"),
 ("detection.logit_scores names string", lambda: detection.scores.logit_scores(_L, names="msp"), TypeError, r"names must be a sequence of names, not one string; got 'msp'"),
 ("robustness.corruption_suite corruptions string", lambda: robustness.corruption_suite(K, _XB, corruptions="contrast"), TypeError, r"corruptions must be a sequence of names, not one string"),
 ("data.Dataset class_names string", lambda: data.Dataset(_XB, _YB, 10, "abcdefghij"), TypeError, r"class_names must be a sequence of names, not one string"),
 ("data.Dataset class_names duplicate", lambda: data.Dataset(_XB, _YB, 3, ("a", "a", "b")), ValueError, r"class_names must be distinct; got 'a' at positions 0 and 1"),
 ("losses.cross_entropy_loss labels for batch", lambda: losses.cross_entropy_loss(_L, _YB, None), TypeError, r"batch must be the batch dict with 'y'.*got ndarray"),
 ("make_train_step augment string", lambda: training.make_train_step(losses.cross_entropy_loss, optax.sgd(0.1), augment="auto"), TypeError, r"augment must be a function augment\(key, x\)"),
 ("detection.init_mlp one size", lambda: detection.init_mlp(K, [6]), ValueError, r"sizes must hold at least two layer sizes"),
 ("data.augment_cifar padding too large", lambda: data.augment_cifar(K, _XB, padding=100), ValueError, r"padding must be smaller than the images' height and width \(8, 8\)"),
 ("robustness.fgsm clip in pixels", lambda: robustness.fgsm(_CLF.logits, _XB, _YB, 0.1, clip=(0, 255)), ValueError, r"clip is the valid range in the images' units.*pass \(0.0, 1.0\)"),
 ("training.Checkpointer max_to_keep 0", lambda: training.Checkpointer("/tmp/ckpt_unused_x", max_to_keep=0), ValueError, r"max_to_keep must be a positive integer; got 0"),
 ("training.make_schedule warmup beyond total", lambda: training.make_schedule("cosine", 0.1, 100, warmup_steps=200), ValueError, r"warmup_steps must be below total_steps=100"),
 ("detection.scores.mahalanobis NaN features", lambda: detection.scores.mahalanobis(None, np.full((2, 4), np.nan)), ValueError, r"features holds NaN"),
 ("deliberative.top_fraction_mask NaN maps", lambda: deliberative.top_fraction_mask(np.full((2, 8, 8), np.nan), 0.2), ValueError, r"maps holds NaN"),
 ("stats.verdict difference NaN", lambda: stats.verdict(0.01, float("nan")), ValueError, r"difference must be a finite number; got nan"),
 ("ev.comparable_maps scores not maps", lambda: ev.comparable_maps(np.ones(6)), ValueError, r"maps must be a batch of maps \(N, \.\.\.\)"),
 ("mutation.default_mutant_path platform", lambda: mutation.default_mutant_path("tpu2"), ValueError, r"platform must be one of 'cpu', 'gpu', 'tpu'.*got 'tpu2'"),
 ("viz.insecurity_outline dim", lambda: __import__("explicable_jax.viz", fromlist=["viz"]).insecurity_outline(np.zeros((8, 8)), np.ones((8, 8), bool), dim=2), ValueError, r"dim"),
 ("grad_cam relu string", lambda: batched_.grad_cam(_CLF, _XB, target=0, layer=_LAYER, relu="no"), ValueError, r"relu must be True or False; got 'no'"),
 ("TrainConfig momentum with adam", lambda: training.TrainConfig(optimizer="adam", momentum=0.5).validate(), ValueError, r"momentum applies only to optimizer='sgd'.*got momentum=0.5 with optimizer='adam'"),
 ("make_optimizer nesterov with adamw", lambda: training.make_optimizer("adamw", 0.1, nesterov=False), ValueError, r"nesterov applies only to optimizer='sgd'"),
 ("default_augment crop_flip on 8x8 digits", lambda: __import__("explicable_jax.training.run", fromlist=["run"]).default_augment(training.TrainConfig(augment="crop_flip"), _ds()), ValueError, r"augment='crop_flip'.*images of at least 32x32; dataset 'digits' has inputs of shape \(8, 8, 1\)"),
 # Fourth trial (637 calls): the silent and cryptic cases, by convention.
 ("models.save meta changes input_shape", lambda: models.save("/tmp/ej_unused_save", _CLF, meta={"input_shape": [3, 3, 3]}), ValueError, r"meta may not change the fields models.save writes itself \('input_shape'\)"),
 ("models.save meta array", lambda: models.save("/tmp/ej_unused_save", _CLF, meta={"arr": np.zeros(3)}), TypeError, r"meta must hold JSON values"),
 ("models.classifier batch axis in input_shape", lambda: models.classifier(K, "mlp", input_shape=(1, 8, 8, 1), num_classes=10), ValueError, r"input_shape is one example's shape, without the batch axis; got \(1, 8, 8, 1\): pass \(8, 8, 1\)"),
 ("models.classifier input_std zero", lambda: models.classifier(K, "cnn", input_shape=(8, 8, 1), num_classes=10, input_mean=(0.5,), input_std=(0.0,)), ValueError, r"input_std must be finite and positive"),
 ("models.classifier input_mean per channel", lambda: models.classifier(K, "cnn", input_shape=(8, 8, 1), num_classes=10, input_mean=(.5, .5, .5), input_std=(.2, .2, .2)), ValueError, r"input_mean must hold one value per channel \(1"),
 ("from_functions all-NaN logits", lambda: models.from_functions(lambda p, x: x.reshape(len(x), -1) @ p * jnp.nan, np.ones((64, 10)), input_shape=(8, 8, 1)), ValueError, r"no finite logit at all"),
 ("data.Dataset x list", lambda: data.Dataset(list(_XB), _YB, 10, ()), TypeError, r"x must be a numpy array; got list"),
 ("data.Dataset one class", lambda: data.Dataset(_XB, _YB * 0, 1, ()), ValueError, r"num_classes must be at least 2"),
 ("data.Dataset annotation shape", lambda: data.Dataset(_XB, _YB, 10, (), extras={"annotation": np.ones((len(_YB), 4, 4, 1), bool)}), ValueError, r"extras\['annotation'\] must mark the inputs' features"),
 ("data.batches no batch left", lambda: list(data.batches(_ds(), 5000, drop_remainder=True)), ValueError, r"batch_size=5000 with drop_remainder=True leaves no batch"),
 ("data.batches start beyond epoch", lambda: list(data.batches(_ds(), 100, start=1000)), ValueError, r"start must be at most the 14 batches"),
 ("data.batches rows clipped", lambda: list(data.batches(_ds(), 4, rows=slice(2, 10))), ValueError, r"rows must lie inside the 4 rows"),
 ("TrainConfig nesterov string", lambda: training.TrainConfig(nesterov="yes").validate(), ValueError, r"nesterov must be True or False"),
 ("TrainConfig weight_decay negative", lambda: training.TrainConfig(weight_decay=-1).validate(), ValueError, r"weight_decay must be a non-negative number"),
 ("TrainConfig model_kwargs list", lambda: training.TrainConfig(model_kwargs=[("hidden", 8)]).validate(), TypeError, r"model_kwargs must be a dict"),
 ("make_train_step optimizer string", lambda: training.make_train_step(losses.cross_entropy_loss, "adam"), TypeError, r"optimizer must be an optax.GradientTransformation"),
 ("evaluate loss_fn two arguments", lambda: training.evaluate(_CLF, _ds(), loss_fn=losses.cross_entropy), TypeError, r"loss_fn must be a function loss_fn\(logits, batch, params\)"),
 ("stats.paired_bootstrap level 0", lambda: stats.paired_bootstrap(K, lambda a: a.mean(), [np.arange(5.0)], level=0), ValueError, r"level must be a number in \(0, 1\)"),
 ("mutation.make_mutants max_draws below n", lambda: mutation.make_mutants(K, _CLF, 4, "NAI", 0.1, max_draws=2), ValueError, r"max_draws must be at least n=4"),
 ("similarity.wordnet_similarity duplicate", lambda: similarity.wordnet_similarity(["cat", "cat"]), ValueError, r"classes must be distinct"),
 ("AuditConfig classes duplicate", lambda: __import__("explicable_jax.app.audit", fromlist=["AuditConfig"]).AuditConfig(dataset="digits", classes=("a", "a") + tuple("bcdefghi")).validate(), ValueError, r"classes must be distinct"),
 # Session 20: the fourth trial's remaining cases, by convention.
 ("fgsm logits_fn returns probabilities", lambda: robustness.fgsm(_softmax_fn, _XB, _YB, 0.1), ValueError, r"logits_fn\(x\).*probabilities \(a softmax output\)"),
 ("input_gradients model_fn returns probabilities", lambda: losses.input_gradients(_softmax_fn, jnp.asarray(_XB)), ValueError, r"model_fn\(x\).*probabilities"),
 ("input_gradients model_fn an array", lambda: losses.input_gradients(jnp.asarray(_XB), jnp.asarray(_XB)), TypeError, r"model_fn must be a function x -> \(N, C\) logits; got ArrayImpl"),
 ("jsma targets are the predictions", lambda: robustness.jsma(_CLF, _XB, np.asarray(_CLF.logits(_XB)).argmax(-1)), ValueError, r"labels are jsma's target classes, and all 4 already are the model's predictions"),
 ("accuracy_under key without perturb", lambda: robustness.accuracy_under(_CLF, _XB, _YB, key=K), ValueError, r"key is read only with perturb"),
 ("make_weighted_loss zero diagonal", lambda: losses.make_weighted_loss(1 - np.eye(10)), ValueError, r"diagonal.*positive; rows \[0, 1, 2"),
 ("make_weighted_loss scale with l1", lambda: losses.make_weighted_loss(np.eye(10) + 0.1, scale=5.0), ValueError, r"scale is read only with target='authors' or 'softmax'"),
 ("make_weighted_loss path", lambda: losses.make_weighted_loss("/tmp/w.npy"), TypeError, r"weights must be a \(C, C\) similarity matrix; got the path"),
 ("integrated_gradients (one example) baselines 255", lambda: attribution.integrated_gradients(lambda v: v.sum(), jnp.zeros((8, 8, 1)), baselines=255.0), ValueError, r"baselines must be in the images' units.*255 / 255"),
 ("ev.insertion_curve baselines 255", lambda: ev.insertion_curve(_CLF, _XB, _XB, target=0, baselines=255.0), ValueError, r"baselines must be in the images' units"),
 ("ev.sensitivity_max radius 5", lambda: ev.sensitivity_max(K, lambda m, v, target: v, _CLF, _XB, target=0, perturb_radius=5.0), ValueError, r"perturb_radius is in the images' units"),
 ("ev.infidelity perturb_func one array", lambda: ev.infidelity(K, _CLF, lambda k, v: v + 0.01, _XB, _XB, target=0), TypeError, r"perturb_func must return \(perturbations, perturbed_inputs\).*one array"),
 ("ev.layer_groups example_shape int", lambda: ev.layer_groups(_CLF, 64), ValueError, r"example_shape must be one example's shape.*got 64"),
 ("attribution_maps ig_space with gradient", lambda: deliberative.attribution_maps(_CLF, _XB, layer=_LAYER, method="gradient", ig_space="input"), ValueError, r"ig_space is read only with method='integrated_gradients'"),
 ("insecurities num_classes mismatch", lambda: deliberative.insecurities(_CLF, _XB, layer=_LAYER, num_classes=5), ValueError, r"num_classes must be the model's number of class scores, 10"),
 ("insecurities difficulty form", lambda: deliberative.insecurities(_CLF, _XB, layer=_LAYER, difficulty=lambda z: z), ValueError, r"difficulty must be a function outputs \(N, C\) -> \(N,\).*shape \(4, 10\)"),
 ("hardness_difficulty 0", lambda: deliberative.hardness_difficulty(0), ValueError, r"num_classes must be a positive integer; got 0"),
 ("detector.mlp_logit dropout without key", lambda: detection.detector.mlp_logit([{"w": jnp.ones((3, 1)), "b": jnp.zeros(1)}, {"w": jnp.ones((1, 1)), "b": jnp.zeros(1)}], jnp.ones((2, 3)), dropout=0.5), ValueError, r"dropout=0.5 is applied only in training, with key="),
 ("detector.fit_combiner qda one wrong", lambda: detection.detector.fit_combiner("qda", np.random.default_rng(0).normal(size=(40, 2)), np.arange(40) == 0), ValueError, r"is_wrong must hold at least 2 wrong and 2 right predictions.*got 1 wrong and 39 right"),
 ("data.load data_dir missing", lambda: data.load("digits", "train", data_dir="/nonexistent/ej"), FileNotFoundError, r"data_dir must be an existing folder.*no such folder"),
 ("data.split_dataset one int", lambda: data.split_dataset(_ds(), 100, seed=0), ValueError, r"sizes must be a sequence of part sizes.*got 100"),
 ("data.random_crop_flip batch", lambda: data.random_crop_flip(K, jnp.zeros((2, 8, 8, 1))), ValueError, r"image must be one image \(H, W, C\).*augment_cifar"),
 ("data.parts_dataset noise negative", lambda: __import__("explicable_jax.data.parts", fromlist=["parts"]).parts_dataset("train", n=20, noise=-1.0), ValueError, r"noise must be a non-negative number"),
 ("models.from_functions input_shape int", lambda: models.from_functions(lambda p, v: v.reshape(len(v), -1) @ p, np.ones((64, 10)), input_shape=64), ValueError, r"input_shape must be one example's shape.*got 64"),
 ("Checkpointer on a file", lambda: training.Checkpointer(__file__), NotADirectoryError, r"directory .* is a file"),
 ("fit train_step is a loss", lambda: training.fit(training.create_train_state(K, _CLF, optax.sgd(0.1)), _ds(), train_step=losses.cross_entropy_loss, epochs=1, batch_size=64, progress=False), TypeError, r"train_step must be a step function step\(state, batch\); got cross_entropy_loss, a loss"),
 ("metrics.mean_mistake_similarity small matrix", lambda: metrics.mean_mistake_similarity(np.array([0, 5]), np.array([1, 2]), np.eye(3)), ValueError, r"similarity_matrix is 3x3 \(classes 0..2\), but labels holds class 5"),
 ("metrics.explicability_losses one matrix", lambda: metrics.explicability_losses(_L + np.arange(10), _YB, np.eye(10)), TypeError, r"matrices must be a mapping name -> \(C, C\) similarity matrix"),
 ("metrics.coverage_threshold empty", lambda: metrics.coverage_threshold(np.array([]), 0.5), ValueError, r"error_scores must hold at least one score"),
 ("robustness.train_substitute oracle labels", lambda: robustness.train_substitute(K, _YB, lambda k: {}, lambda p, v: v, _XB), TypeError, r"oracle must be a function x -> logits"),
 # Fifth trial (604 calls: 8 silent, 33 cryptic): each fixed by its convention's helper.
 ("label smoothing loss fractional batch labels", lambda: losses.make_label_smoothing_loss(0.1)(_L, {"y": _YB + 0.5}), ValueError, r"batch\['y'\] must be integer class indices"),
 ("input_gradient_penalty 0..255 floats with a classifier", lambda: losses.input_gradient_penalty(_CLF.logits, _XB + 200.0, np.ones_like(_XB)), ValueError, r"x must be float images in \[0, 1\].*0..255 pixels stored as floats"),
 ("input_gradients 0..255 floats with a classifier", lambda: losses.input_gradients(_CLF, _XB + 200.0), ValueError, r"x must be float images in \[0, 1\]"),
 ("data.split_dataset an array", lambda: data.split_dataset(_XB, [2, 2], seed=0), TypeError, r"ds must be a data.Dataset; got ndarray"),
 ("data.batches a tuple", lambda: list(data.batches((_XB, _YB), 2)), TypeError, r"ds must be a data.Dataset; got tuple"),
 ("data.batches epoch without shuffle", lambda: list(data.batches(_ds(), 100, epoch=3)), ValueError, r"seed and epoch set the shuffling order, read only with shuffle=True"),
 ("data.num_batches drop_remainder string", lambda: data.num_batches(10, 3, "no"), ValueError, r"drop_remainder must be True or False; got 'no'"),
 ("data.Dataset extras list", lambda: data.Dataset(_XB, _YB, 10, (), extras=[1, 2]), TypeError, r"extras must be a mapping"),
 ("data.parts.shared_parts class out of range", lambda: __import__("explicable_jax.data.parts", fromlist=["parts"]).shared_parts(np.zeros((5, 3), int), 0, 7), ValueError, r"b must be a class of the table, in \[0, 5\); got 7"),
 ("make_schedule warmup with constant", lambda: training.make_schedule("constant", 0.1, 100, warmup_steps=5), ValueError, r"warmup_steps is read only with schedule='cosine'"),
 ("make_schedule warmup negative", lambda: training.make_schedule("constant", 0.1, 100, warmup_steps=-5), ValueError, r"warmup_steps must be a non-negative integer"),
 ("TrainConfig warmup_epochs with step", lambda: training.TrainConfig(schedule="step", warmup_epochs=1.0, epochs=5).validate(), ValueError, r"warmup_epochs is read only with schedule='cosine'"),
 ("make_optimizer learning rate string", lambda: training.make_optimizer("sgd", "0.1"), ValueError, r"schedule must be a positive number; got '0.1'"),
 ("data_mesh no devices", lambda: training.data_mesh(devices=[]), ValueError, r"devices must be a non-empty list of devices"),
 ("FitConfig workdir int", lambda: training.FitConfig(epochs=1, batch_size=8, workdir=123), TypeError, r"workdir must be a folder path"),
 ("make_eval_step loss name", lambda: training.make_eval_step("ce"), TypeError, r"loss_fn must be a function loss_fn\(logits, batch, params\)"),
 ("check_model_input array", lambda: training.check_model_input(_CLF, _XB), TypeError, r"ds must be a data.Dataset; got ndarray"),
 ("JsonlLogger under a file", lambda: __import__("explicable_jax.training.callbacks", fromlist=["c"]).JsonlLogger(os.path.join(__file__, "x.jsonl")), NotADirectoryError, r"lies under .* which is a file"),
 ("MetricsWriter on a folder", lambda: training.MetricsWriter(os.path.dirname(__file__)), IsADirectoryError, r"path .* is a folder; expected a file path"),
 ("accuracy_under perturb drops rows", lambda: robustness.accuracy_under(_CLF, _XB, _YB, perturb=lambda k, a, b: a[:0], key=K), ValueError, r"perturb must return its input batch's shape"),
 ("weighted_cross_entropy matrix name", lambda: losses.weighted_cross_entropy(_L, _YB, "ekl"), TypeError, r"weights must be a \(C, C\) similarity matrix; got the path or name 'ekl'"),
 ("similarity.explicability_matrix name", lambda: similarity.explicability_matrix(np.eye(3), "chl"), TypeError, r"must be a \(C, C\) similarity matrix; got str 'chl'"),
 ("detection.score_row one coverage", lambda: detection.score_row(_S4, _W, coverages=0.9), TypeError, r"coverages must be a sequence.*one coverage\? pass \(0.9,\)"),
 ("detector.fit_combiner lda constant features", lambda: detection.detector.fit_combiner("lda", np.zeros((6, 2)), np.arange(6) % 2 == 0), ValueError, r"features are constant in every column"),
 ("detector.mlp_logit width", lambda: detection.detector.mlp_logit(detection.detector.init_mlp(K, [3, 4, 1]), jnp.ones((2, 5))), ValueError, r"x must have 3 features per row"),
 ("models.create_model scalar input_mean", lambda: models.create_model(K, "cnn", input_shape=(8, 8, 1), num_classes=10, input_mean=0.5, input_std=0.2), ValueError, r"input_mean must be a sequence with one value per channel"),
 ("models.create_model input_mean alone", lambda: models.create_model(K, "cnn", input_shape=(8, 8, 1), num_classes=10, input_mean=(0.5,)), ValueError, r"input_mean needs input_std too"),
 ("models.classifier vgg16_bn on 8x8", lambda: models.classifier(K, "vgg16_bn", input_shape=(8, 8, 1), num_classes=10), ValueError, r"vgg16_bn needs images of at least 32x32"),
 ("batched.smoothgrad attribution_fn string", lambda: batched_.smoothgrad(K, _CLF, _XB, target=0, attribution_fn="ig"), TypeError, r"attribution_fn must be a function \(score_fn, x\) -> attributions"),
 ("attribution.upsample size int", lambda: attribution.upsample(np.zeros((2, 4, 4)), 8), ValueError, r"size must be \(height, width\).*got 8"),
 ("attribution.integration_points too many nodes", lambda: attribution.integration_points("gausslegendre", 1_000_000), ValueError, r"n_steps must be at most 2000 for method 'gausslegendre'"),
 ("ev.area_under_curve mismatched curve", lambda: ev.area_under_curve(ev.Curve(np.linspace(0, 1, 5), np.ones((6, 4)))), ValueError, r"curve.scores must be \(N, T\) with T = len\(curve.fractions\)"),
 ("rrr.find_another_explanation array", lambda: rrr.find_another_explanation(K, _XB, n_models=1, make_model=lambda k: _CLF, optimizer=optax.sgd(0.1)), TypeError, r"train must be a data.Dataset; got ndarray"),
 ("rrr.find_another_explanation make_model classifier", lambda: rrr.find_another_explanation(K, _ds(), n_models=1, make_model=_CLF, optimizer=optax.sgd(0.1)), TypeError, r"make_model must be a factory key -> a fresh model"),
 ("attribution_maps top_k zero", lambda: deliberative.attribution_maps(_CLF, _XB, layer=_LAYER, top_k=0), ValueError, r"top_k must be a positive integer; got 0"),
 ("top_fraction_mask 1-D", lambda: deliberative.top_fraction_mask(np.zeros(4), 0.5), ValueError, r"maps must be \(\.\.\., H, W\) maps; got shape \(4,\)"),
 ("random_region jax key", lambda: deliberative.random_region(K, (4, 4), 3), TypeError, r"rng must be a numpy Generator"),
 ("split_hardness_output float classes", lambda: deliberative.split_hardness_output(np.zeros((2, 11)), 10.0), ValueError, r"num_classes must be a positive integer; got 10.0 \(an int: pass 10\)"),
 ("viz.save no axes", lambda: __import__("explicable_jax.viz", fromlist=["viz"]).save(None, "/tmp/ej_unused.png"), TypeError, r"ax must be the matplotlib Axes"),
 ("audit annotations not an npz", lambda: __import__("explicable_jax.app.audit.context", fromlist=["c"]).load_annotations(__file__, {}, {}), ValueError, r"annotations .* is not an .npz file"),
 # Sixth trial (636 calls: 25 silent, 30 cryptic): each by its convention's helper.
 ("accuracy_under perturb returns 0..255", lambda: robustness.accuracy_under(_CLF, _XB, _YB, perturb=lambda k, a, b: a * 255 + 200, key=K), ValueError, r"perturb must return images in the inputs' units.*far off the images' \[0, 1\] scale"),
 ("accuracy_under perturb returns NaN", lambda: robustness.accuracy_under(_CLF, _XB, _YB, perturb=lambda k, a, b: a * jnp.nan, key=K), ValueError, r"perturb must return images.*NaN or inf for 4 of 4"),
 ("pgd step_size zero", lambda: robustness.pgd(K, _CLF, _XB, _YB, 0.1, step_size=0.0), ValueError, r"step_size must be positive"),
 ("pgd key left out", lambda: robustness.pgd(_CLF, _XB, _YB, 0.1), TypeError, r"the PRNG key comes first, pgd\(key, \.\.\.\)"),
 ("carlini_wagner_l2 targets are the predictions", lambda: robustness.carlini_wagner_l2(_CLF, _XB, np.asarray(_CLF.logits(_XB)).argmax(-1), targeted=True, max_iterations=2), ValueError, r"labels are carlini_wagner_l2's target classes"),
 ("train_substitute step_size 0..255", lambda: robustness.train_substitute(K, _CLF, lambda k: {"w": jnp.zeros((64, 10))}, lambda p, v: v.reshape(len(v), -1) @ p["w"], _XB, step_size=25.0), ValueError, r"step_size is in the images' units"),
 ("train_substitute apply_fn softmax", lambda: robustness.train_substitute(K, _CLF, lambda k: {"w": jnp.zeros((64, 10))}, lambda p, v: jax.nn.softmax(v.reshape(len(v), -1) @ p["w"]), _XB), ValueError, r"apply_fn\(x\).*probabilities"),
 ("make_mutants gate settings without accuracy_fn", lambda: mutation.make_mutants(K, _CLF, 3, "NAI", 0.1, min_relative_accuracy=0.5), ValueError, r"min_relative_accuracy=0.5 would be ignored: the accuracy gate runs only with accuracy_fn"),
 ("fit checkpoint_every without workdir", lambda: training.fit(training.create_train_state(K, _CLF, optax.sgd(0.1)), _ds(), train_step=training.make_train_step(losses.cross_entropy_loss, optax.sgd(0.1)), epochs=1, batch_size=64, progress=False, checkpoint_every=5), ValueError, r"checkpoint_every=5 would be ignored: it is read only with a workdir"),
 ("fit eval_every without eval_ds", lambda: training.fit(training.create_train_state(K, _CLF, optax.sgd(0.1)), _ds(), train_step=training.make_train_step(losses.cross_entropy_loss, optax.sgd(0.1)), epochs=1, batch_size=64, progress=False, eval_every=2), ValueError, r"eval_every=2 would be ignored"),
 ("fit seed without shuffle", lambda: training.fit(training.create_train_state(K, _CLF, optax.sgd(0.1)), _ds(), train_step=training.make_train_step(losses.cross_entropy_loss, optax.sgd(0.1)), epochs=1, batch_size=64, progress=False, seed=1, shuffle=False), ValueError, r"seed=1 would be ignored: it is read only with shuffle=True"),
 ("reporting.markdown_table header string", lambda: reporting.markdown_table("ab", [[1, 2]]), TypeError, r"header must be a sequence of column names; got the string 'ab'"),
 ("reporting.save_results out_dir a file", lambda: reporting.save_results(__file__, {}), NotADirectoryError, r"out_dir .* is a file"),
 ("viz.save to a folder", lambda: __import__("explicable_jax.viz", fromlist=["viz"]).save(__import__("explicable_jax.viz", fromlist=["viz"]).heatmap(np.eye(2)), os.path.dirname(__file__)), IsADirectoryError, r"path .* is a folder"),
 ("viz.heatmap percent format", lambda: __import__("explicable_jax.viz", fromlist=["viz"]).heatmap(np.eye(2), fmt="%.2f"), ValueError, r"fmt must be a str.format pattern"),
 ("audit rows_to_mask not 0/1", lambda: __import__("explicable_jax.app.audit.hesitation", fromlist=["h"]).rows_to_mask(["0121"]), ValueError, r"rows must be strings of 0 and 1"),
 ("models.count_params string", lambda: models.count_params("abc"), TypeError, r"params must be a pytree of arrays"),
 ("models.from_nnx layers one string", lambda: models.from_nnx(_SoftmaxModule(nnx.Rngs(0)), layers="d", input_shape=(8, 8, 1), num_classes=10), TypeError, r"layers must be a sequence of sub-module names.*got the string 'd'"),
 ("stats.verdict higher not a word", lambda: stats.verdict(0.01, 1.0, higher=1), TypeError, r"higher must be the word for that direction"),
 ("attribution.at_precision not a function", lambda: attribution.at_precision(3), TypeError, r"call must be a function of no arguments"),
 ("training.data_parallel mesh string", lambda: training.data_parallel(lambda s, b: (s, {}), mesh="data"), TypeError, r"mesh must be a jax.sharding.Mesh"),
 ("rrr.mlp_factory input_shape int", lambda: rrr.mlp_factory(64, 10), ValueError, r"input_shape must be one example's shape"),
 ("rrr.find_another_explanation make_model without key", lambda: rrr.find_another_explanation(K, _ds(), n_models=1, make_model=lambda: _CLF, optimizer=optax.sgd(0.1)), TypeError, r"make_model must be a function key -> a fresh model"),
 ("attribution_maps top_k above classes", lambda: deliberative.attribution_maps(_CLF, _XB, layer=_LAYER, top_k=11), ValueError, r"top_k must be at most the model's 10 classes; got 11"),
 ("TrainConfig weighted loss file missing", lambda: training.TrainConfig(loss="weighted", loss_kwargs={"weights": "/nonexistent/w.npy"}).validate(), FileNotFoundError, r"loss_kwargs\['weights'\].*does not exist"),
 ("detector.train_detector hidden int", lambda: detection.detector.train_detector(K, np.zeros((8, 2)), np.arange(8) % 2 == 0, hidden=16), TypeError, r"hidden must be a sequence of layer widths.*one layer\? pass \(16,\)"),
 ("models.load a classifier", lambda: models.load(_CLF), TypeError, r"path must be a model folder"),
 ("deliberative.class_ambiguities rank", lambda: deliberative.class_ambiguities(np.zeros((2, 3, 4))), ValueError, r"class_maps must have rank 4"),
 ("attribution_maps difficulty_head_fn number", lambda: deliberative.attribution_maps(_CLF, _XB, layer=_LAYER, difficulty_head_fn=3), TypeError, r"difficulty_head_fn must be a function"),
 # Seventh trial (512 calls: 11 silent problems, 12 cryptic): by convention.
 ("input_gradients model_fn one score per example", lambda: losses.input_gradients(lambda v: v.sum(1) * 3.0, jnp.ones((3, 4))), ValueError, r"model_fn\(x\) must return class scores \(N, C\) with C >= 2; it returns shape \(3,\)"),
 ("input_gradient_penalty single-logit model", lambda: losses.input_gradient_penalty(lambda v: v[:, :1] * 5.0, jnp.ones((3, 4)), np.ones((3, 4))), ValueError, r"shape \(3, 1\)"),
 ("accuracy_under logits_fn one column", lambda: robustness.accuracy_under(lambda v: _CLF.logits(v)[:, 0], _XB, _YB), ValueError, r"logits_fn\(x\) must return class scores \(N, C\)"),
 ("attribution.gradient NaN example", lambda: attribution.gradient(attribution.class_score_fn(_CLF.logits, 0), jnp.full((8, 8, 1), jnp.nan)), ValueError, r"x holds NaN or inf"),
 ("attribution.gradient_x_input 0..255 floats", lambda: attribution.gradient_x_input(attribution.class_score_fn(_CLF.logits, 0), jnp.full((8, 8, 1), 200.0)), ValueError, r"x must be float images in \[0, 1\]"),
 ("attribution.grad_cam dense layer of images", lambda: attribution.grad_cam(*_CLF.split(_CLF.layers[-2]), _XB, target=0), ValueError, r"must have spatial maps \(N, H, W, C\) for Grad-CAM of images"),
 ("train_substitute fewer classes than the oracle", lambda: robustness.train_substitute(K, _CLF, lambda k: {"w": jnp.zeros((64, 3))}, lambda p, v: v.reshape(len(v), -1) @ p["w"], _XB), ValueError, r"apply_fn must return one logit per class of the oracle \(10\); the substitute returns 3"),
 ("register_operator wrong form", lambda: mutation.register_operator("ZZ_UNUSED", lambda p: p), TypeError, r"fn must be a function fn\(key, params, rate, \*\*options\)"),
 ("make_mutants operator wrong form", lambda: mutation.make_mutants(K, _CLF, 2, lambda p: p, 0.1), TypeError, r"operator must be a function fn\(key, params, rate"),
 ("metrics.coverage_threshold zero", lambda: metrics.coverage_threshold(_S4, 0.0), ValueError, r"coverage must be in \(0, 1\]"),
 ("detector_scores swapped", lambda: detection.detector.detector_scores(np.zeros((3, 2)), None), TypeError, r"detector must be the Detector train_detector returns"),
 ("predict inputs and labels tuple", lambda: training.predict(_CLF, (_XB, _YB)), ValueError, r"x must be one batch of shape \(N, 8, 8, 1\) for this model; got a tuple of 2"),
 ("shard_batch an array", lambda: training.shard_batch(_XB, training.data_mesh()), TypeError, r"batch must be the batch dict of data.batches"),
 ("viz.heatmap ax string", lambda: __import__("explicable_jax.viz", fromlist=["viz"]).heatmap(np.eye(2), ax="ax"), TypeError, r"ax must be matplotlib Axes"),
 ("viz.heatmap bad format code", lambda: __import__("explicable_jax.viz", fromlist=["viz"]).heatmap(np.eye(2), fmt="{:.2q}"), ValueError, r"fmt must be a str.format pattern for one number"),
 ("TrainConfig model_kwargs num_classes", lambda: training.TrainConfig(model_kwargs={"num_classes": 3}).validate(), ValueError, r"model_kwargs may not set num_classes: the dataset fixes it"),
 ("fit with an eval step", lambda: training.fit(training.create_train_state(K, _CLF, optax.sgd(0.1)), _ds(), train_step=training.make_eval_step(), epochs=1, batch_size=64, progress=False), TypeError, r"got make_eval_step's function"),
 # Eighth trial (618 calls: 2 hangs, 11 silent, 25 cryptic): by convention.
 ("parts.class_part_table more classes than possible", lambda: __import__("explicable_jax.data.parts", fromlist=["parts"]).class_part_table(100, 4, 2), ValueError, r"num_classes must be at most the 96 distinct classes"),
 ("parts.shared_parts 1-D table", lambda: __import__("explicable_jax.data.parts", fromlist=["parts"]).shared_parts(np.arange(5), 0, 1), ValueError, r"table must be class_part_table's \(classes, slots\) array"),
 ("viz.heatmap annotate string", lambda: __import__("explicable_jax.viz", fromlist=["viz"]).heatmap(np.eye(3), annotate="no"), ValueError, r"annotate must be True or False; got 'no'"),
 ("ev.insertion_curve model returns probabilities", lambda: ev.insertion_curve(_softmax_fn, _XB + 0.5, np.ones_like(_XB), target=0, n_steps=4), ValueError, r"model\(x\).*probabilities"),
 ("mutation.gaussian_fuzzing sigma with replace", lambda: mutation.gaussian_fuzzing(K, _CLF.params, 0.1, sigma=0.5, mode="replace"), ValueError, r"sigma is read only with mode='additive'"),
 ("detector.mlp_logit dropout above 1", lambda: detection.detector.mlp_logit(detection.detector.init_mlp(K, [3, 4, 1]), jnp.ones((2, 3)), dropout=2.0, key=K), ValueError, r"dropout must be a rate in \[0, 1\); got 2.0"),
 ("ev.ssim data_range zero", lambda: ev.ssim(np.ones((2, 8, 8)), np.ones((2, 8, 8)), data_range=0), ValueError, r"data_range must be a positive number; got 0"),
 ("data.network_reachable port string", lambda: data.network_reachable(port="https"), ValueError, r"port must be a positive integer; got 'https'"),
 ("Classifier.replace class_names count", lambda: _CLF.replace(class_names=("a", "b")), ValueError, r"class_names must name the model's 10 classes; got 2 names"),
 ("ev.comparable_maps channel-first", lambda: ev.comparable_maps(np.ones((3, 1, 8, 8))), ValueError, r"maps must be channel-last \(N, H, W, C\)"),
 ("JsonlLogger path int", lambda: __import__("explicable_jax.training.callbacks", fromlist=["c"]).JsonlLogger(3), TypeError, r"path must be a file path \(str or os.PathLike\); got int"),
 ("Checkpointer directory int", lambda: training.Checkpointer(5), TypeError, r"directory must be a folder path \(str or os.PathLike\); got int"),
 ("ev.default_perturb_func key int", lambda: ev.default_perturb_func(0, _XB), TypeError, r"key must be a PRNG key"),
 ("detector.fit_combiner swapped", lambda: detection.detector.fit_combiner(np.zeros((6, 2)), "lda", np.arange(6) % 2 == 0), ValueError, r"kind must be one of .*got an array of shape \(6, 2\) \(arguments swapped\?\)"),
 ("fit callbacks class", lambda: training.fit(training.create_train_state(K, _CLF, optax.sgd(0.1)), _ds(), train_step=training.make_train_step(losses.cross_entropy_loss, optax.sgd(0.1)), epochs=1, batch_size=64, progress=False, callbacks=[training.Callback]), TypeError, r"callbacks\[0\] must be a callback instance; got the class Callback"),
 ("mutation.label_change_rate empty batch", lambda: mutation.label_change_rate(_CLF, _muts(), _XB[:0]), ValueError, r"x must hold at least one example"),
 ("deliberative.random_region 3-D shape", lambda: deliberative.random_region(np.random.default_rng(0), (4, 4, 3), 3), ValueError, r"shape must be \(H, W\)"),
 ("stats.t_test_over_seeds string", lambda: stats.t_test_over_seeds("abc"), TypeError, r"differences must be numbers, one per seed"),
 ("similarity.from_ratings scale_max string", lambda: similarity.from_ratings(np.eye(3) * 4, scale_max="7"), ValueError, r"scale_max must be a positive number"),
 ("similarity.explicability_matrix mapping", lambda: similarity.explicability_matrix({"a": np.eye(3)}), TypeError, r"matrices\[0\] must be a \(C, C\) matrix; got a mapping"),
 ("viz.heatmap vmin above vmax", lambda: __import__("explicable_jax.viz", fromlist=["viz"]).heatmap(np.eye(3), vmin=1, vmax=0), ValueError, r"vmin must be at most vmax"),
 # Session 21: the eighth trial's remaining cryptic cases, by convention.
 ("models.split_at given a Classifier", lambda: models.split_at(_CLF, _LAYER), ValueError, r"graphdef must be an NNX GraphDef.*got Classifier: .*clf.split\(layer\)"),
 ("models.merge_model given a Classifier", lambda: models.merge_model(_CLF, None, None), ValueError, r"graphdef must be an NNX GraphDef.*got Classifier"),
 ("models.apply_model without graphdef", lambda: models.apply_model(*models.split_model(models.create_model(K, "mlp", input_shape=(8, 8, 1), num_classes=10))[1:], _XB), ValueError, r"graphdef must be an NNX GraphDef.*got State: parameters or model state"),
 ("similarity.check_weight_matrix swapped", lambda: similarity.check_weight_matrix(np.eye(3), "W"), TypeError, r"check_weight_matrix\(name, value, ...\) takes the argument's name first.*swapped"),
 ("data.check_dataset swapped", lambda: data.check_dataset(_ds(), "train"), TypeError, r"check_dataset\(name, value, ...\) takes the argument's name first.*swapped"),
 ("deliberative.insecurity_maps maps of two calls", lambda: deliberative.insecurity_maps(np.ones((2, 3, 4, 4)), np.ones((3, 4, 4)), (8, 8)), ValueError, r"difficulty_map must be \(N, h, w\) = \(2, 4, 4\).*got shape \(3, 4, 4\)"),
 ("deliberative.insecurity_maps size one number", lambda: deliberative.insecurity_maps(np.ones((2, 3, 4, 4)), np.ones((2, 4, 4)), 8), ValueError, r"size must be \(height, width\), two positive integers; got 8"),
 ("data.rrr.toy_colors_rule_scores wrong shape", lambda: __import__("explicable_jax.data.rrr", fromlist=["rrr"]).toy_colors_rule_scores(np.ones((4, 5, 5))), ValueError, r"input_gradients must be the toy colours' gradients, \(N, 5, 5, 3\)"),
 ("ev.model_parameter_randomisation init without key", lambda: ev.model_parameter_randomisation(K, lambda c, v, t: v, _CLF, _XB, target=0, init=lambda: 0), TypeError, r"init must be a function key -> params"),
 ("ev.deletion_curve model (params, x)", lambda: ev.deletion_curve(lambda p, z: z, _XB, _XB, target=0), TypeError, r"model must be a function x -> \(N, C\) class scores; <lambda>\(p, z\)"),
 ("mutation.mutant_predictions unstacked mutant", lambda: mutation.mutant_predictions(_CLF, _CLF.params, _XB), ValueError, r"leading mutant axis.*one mutant's parameters\? add the axis"),
 ("mutation.mutant_predictions list of mutants", lambda: mutation.mutant_predictions(_CLF, [_CLF.params, _CLF.params], _XB), ValueError, r"a list of 2 mutants: jax.tree.map\(lambda \*a: jnp.stack\(a\), \*mutants\)"),
 ("detection.scores.mahalanobis swapped", lambda: detection.scores.mahalanobis(np.ones((4, 3), np.float32), detection.scores.fit_mahalanobis(np.random.default_rng(0).random((8, 3)), np.arange(8) % 2, 2)), ValueError, r"features must be a batch .*got a GaussianFit, a named result \(the arguments swapped\?\)"),
 ("attribution tuple of inputs of different lengths", lambda: batched_.saliency(lambda a, b: a.reshape(len(a), -1)[:, :2] + b[:, :2], (_XB, np.ones((3, 4), np.float32)), target=0), ValueError, r"x as a tuple of inputs must share the batch axis; got leading sizes \[4, 3\]"),
 # Ninth trial (681 calls: 37 silent, 19 cryptic): by convention.
 ("conventions.to_unit_float 0..255 floats", lambda: __import__("explicable_jax.conventions", fromlist=["c"]).to_unit_float(np.full((2, 8, 8, 1), 200.0)), ValueError, r"x must be float images in \[0, 1\].*0..255 pixels stored as floats"),
 ("data.augment_cifar 0..255 floats", lambda: __import__("explicable_jax.data.augment", fromlist=["a"]).augment_cifar(K, np.full((2, 8, 8, 3), 200.0, np.float32)), ValueError, r"images must be float images in \[0, 1\]"),
 ("models.classifier 0..255 statistics", lambda: models.classifier(K, "cnn", input_shape=(8, 8, 1), num_classes=3, input_mean=(125.3,), input_std=(63.0,)), ValueError, r"input_mean must be on the images' \[0, 1\] scale.*divide them by 255"),
 ("from_nnx without input_shape, wrong features", lambda: models.from_nnx(nnx.Linear(4, 3, rngs=nnx.Rngs(0))).logits(np.ones((2, 5), np.float32)), ValueError, r"the model fails on x of shape \(2, 5\).*input_shape="),
 ("from_nnx without input_shape, probabilities", lambda: models.from_nnx(_SoftmaxModule(nnx.Rngs(0))).logits(np.ones((2, 64), np.float32)), ValueError, r"the model's output must hold logits"),
 ("from_functions returns (logits, None)", lambda: models.from_functions(lambda p, v: (v.reshape(len(v), -1) @ p["w"], None), {"w": np.zeros((64, 3), np.float32)}, input_shape=(8, 8, 1), num_classes=3), ValueError, r"returns a tuple of 2 \(logits and state\?"),
 ("fgsm default clip on a model of another scale", lambda: robustness.fgsm(models.from_functions(lambda p, v: v.reshape(len(v), -1) @ p, np.ones((64, 10), np.float32), input_shape=(8, 8, 1), num_classes=10, input_range=None), _XB + 200.0, _YB, 8.0), ValueError, r"clip must contain the inputs.*clip=None for a model of another scale"),
 ("ev.infidelity perturb_func of one argument", lambda: ev.infidelity(K, _CLF, lambda v: v, _XB, _XB, target=_YB), TypeError, r"perturb_func must be a function \(key, x\) -> \(perturbation, perturbed x\)"),
 ("robustness.train_substitute apply_fn (x, params)", lambda: robustness.train_substitute(K, _CLF, lambda k: {"w": jnp.zeros((64, 10))}, lambda v, p: v.reshape(len(v), -1) @ p["w"], _XB, rounds=1, epochs=1), TypeError, r"apply_fn must be \(params, x\) -> logits.*other order"),
 ("robustness.accuracy_under perturb returns (x, y)", lambda: robustness.accuracy_under(_CLF, _XB, _YB, perturb=lambda k, xb, yb: (xb, yb), key=K), ValueError, r"perturb must return the perturbed batch alone.*tuple of 2"),
 ("deliberative difficulty_head_fn returns activations", lambda: deliberative.insecurities(_CLF, np.random.default_rng(0).random((4, 8, 8, 1)).astype(np.float32), layer=_LAYER, difficulty_head_fn=lambda a: a), ValueError, r"difficulty_head_fn must return \(N, C\) outputs"),
 ("deliberative internal_batch_size 0", lambda: deliberative.attribution_maps(_CLF, _XB, layer=_LAYER, internal_batch_size=0), ValueError, r"internal_batch_size must be a positive integer"),
 ("attribution.head_gradient_is_constant target beyond classes", lambda: attribution.head_gradient_is_constant(_CLF.split("dense")[1], jnp.ones((2, 8)), 12), ValueError, r"target"),
 ("batched.targets list mixing names", lambda: batched_.targets(_CLF, _XB, [1, "predicted", 2, 3]), ValueError, r"mixing indices and names"),
 ("Classifier.replace integer class names", lambda: _CLF.replace(class_names=tuple(range(10))), TypeError, r"class_names must be strings.*position 0"),
 ("train step given (x, y)", lambda: training.make_train_step(losses.cross_entropy_loss, optax.sgd(0.1))(training.create_train_state(K, _CLF, optax.sgd(0.1)), (_XB, _YB)), TypeError, r"batch must be a mapping \{'x': inputs, 'y': labels\}.*\(x, y\)\? pass"),
 ("train step on 0..255 floats", lambda: training.make_train_step(losses.cross_entropy_loss, optax.sgd(0.1))(training.create_train_state(K, _CLF, optax.sgd(0.1)), {"x": _XB + 200.0, "y": _YB}), ValueError, r"batch\['x'\] must be float images in \[0, 1\]"),
 ("reporting.markdown_table rows a string", lambda: reporting.markdown_table(["a"], "xyz"), TypeError, r"rows must be a sequence of rows"),
 ("ev.deletion_curve internal_batch_size -1", lambda: ev.deletion_curve(_CLF, _XB, _XB, target=0, internal_batch_size=-1), ValueError, r"internal_batch_size must be a positive integer; got -1"),
 ("ev.deletion_curve more steps than features", lambda: ev.deletion_curve(_CLF, _XB, _XB, target=0, n_steps=1000), ValueError, r"n_steps must be at most the 64 features"),
 ("data.load seed a string", lambda: data.load("toy_colors", "train", seed="1"), ValueError, r"seed"),
 ("metrics.mean_mistake_similarity distance matrix", lambda: metrics.mean_mistake_similarity(np.arange(4), np.roll(np.arange(4), 1), 1 - np.eye(4)), ValueError, r"similarity_matrix must be a similarity matrix whose diagonal"),
 ("fit workdir empty", lambda: training.fit(training.create_train_state(K, _CLF, optax.sgd(0.1)), _ds(), train_step=training.make_train_step(losses.cross_entropy_loss, optax.sgd(0.1)), epochs=1, batch_size=64, progress=False, workdir=""), ValueError, r"workdir must name a folder; got an empty path"),
 ("rrr.decoy_mnist missing data_dir", lambda: __import__("explicable_jax.data.rrr", fromlist=["r"]).decoy_mnist("train", data_dir="/nonexistent/folder"), FileNotFoundError, r"data_dir must be an existing folder"),
 ("losses.make_loss weights file missing", lambda: losses.make_loss("weighted", weights="no_such_W.npy"), FileNotFoundError, r"weights 'no_such_W.npy' does not exist"),
 ("audit config a dict", lambda: __import__("explicable_jax.app.audit", fromlist=["a"]).audit(_CLF, "/tmp/_never_written", {"dataset": "digits"}), TypeError, r"config must be a AuditConfig \(or None\); got dict"),
 ("conventions.check_model_inputs model a string", lambda: __import__("explicable_jax.conventions", fromlist=["c"]).check_model_inputs("x", np.ones((2, 4)), "model"), TypeError, r"model must be a Classifier"),
 ("robustness.jsma theta beyond the range", lambda: robustness.jsma(_CLF, _XB, (_YB + 1) % 10, theta=2.0), ValueError, r"theta must be at most the width of the valid range"),
 ("detection.compare_to_baseline only the baseline", lambda: detection.compare_to_baseline(K, {"msp": _S4}, _W), ValueError, r"at least one score besides the baseline 'msp'"),
 ("robustness.corruption_suite severities a number", lambda: robustness.corruption_suite(K, _XB, severities=3), TypeError, r"severities must be a sequence of severities \(1..5\).*\[3\]"),
 ("evaluation explanation_func (x, model, target)", lambda: ev.model_parameter_randomisation(K, lambda xx, m, t: batched_.saliency(m, xx, target=t), _CLF, _XB, target=_YB), ValueError, r"got Classifier \(the arguments swapped\?"),
 # Tenth trial (568 calls: 1 broken cache, 23 silent, 9 cryptic): by convention.
 ("reporting.cached_arrays text values", lambda: reporting.cached_arrays("/tmp/_ej_never.npz", lambda: {"a": "text"}), TypeError, r"fn\(\) must return numeric arrays; \['a'\] are not"),
 ("reporting.cached_json a value for fn", lambda: reporting.cached_json("/tmp/_ej_never.json", {"a": 1}), TypeError, r"fn must be a function \(\) -> the dict to cache; got dict"),
 ("reporting.cached_json path a folder", lambda: reporting.cached_json("/tmp", dict), IsADirectoryError, r"path '/tmp' is a folder"),
 ("reporting.markdown_table rows of numbers", lambda: reporting.markdown_table(["a", "b"], [1, 2]), TypeError, r"rows\[0\] must be a sequence of cells; got int 1"),
 ("reporting.save_results tables one string", lambda: reporting.save_results("/tmp/_ej_never_dir", {}, tables="| a |"), TypeError, r"tables must be a sequence of Markdown tables, not one string"),
 ("losses.cross_entropy one-column logits", lambda: losses.cross_entropy(np.array([[0.3], [2.0]]), np.array([0, 0])), ValueError, r"logits must be class scores"),
 ("conventions.check_input_shape with the batch axis", lambda: __import__("explicable_jax.conventions", fromlist=["c"]).check_input_shape("input_shape", (1, 28, 28, 1)), ValueError, r"without the batch axis; got \(1, 28, 28, 1\): pass \(28, 28, 1\)"),
 ("viz.attribution_overlay NaN map", lambda: __import__("explicable_jax.viz", fromlist=["v"]).attribution_overlay(np.zeros((8, 8)), np.full((8, 8), np.nan)), ValueError, r"attribution"),
 ("fit on an empty Dataset", lambda: training.fit(training.create_train_state(K, _CLF, optax.sgd(0.1)), data.Dataset(np.zeros((0, 8, 8, 1), np.float32), np.zeros(0, np.int32), 10, tuple("abcdefghij")), train_step=training.make_train_step(losses.cross_entropy_loss, optax.sgd(0.1)), epochs=1, batch_size=8, progress=False), ValueError, r"train_ds holds no examples"),
 ("fgsm logits_fn of (params, x)", lambda: robustness.fgsm(lambda p, v: v.reshape(len(v), -1) @ p, _XB, _YB, 0.03), TypeError, r"logits_fn must be a function x -> \(N, C\) logits.*close over them"),
 ("from_functions stateful apply_fn returning logits only", lambda: models.from_functions(lambda p, st, v, train: v.reshape(len(v), -1) @ p, np.zeros((64, 10), np.float32), {"s": np.zeros(1)}, input_shape=(8, 8, 1), num_classes=10), ValueError, r"must return \(logits, new_state\)"),
 ("train_substitute init_fn returning a string", lambda: robustness.train_substitute(K, _CLF, lambda k: "w", lambda p, v: v.reshape(len(v), -1) @ p, _XB, rounds=1, epochs=1), TypeError, r"init_fn must return the substitute's parameters"),
 ("models.classifier resnet20 given a depth", lambda: models.classifier(K, "resnet20", input_shape=(32, 32, 3), num_classes=10, depth=21), ValueError, r"model 'resnet20' sets its 'depth' itself.*model 'resnet' takes depth="),
 ("audit adversarial_mutants without attacks", lambda: __import__("explicable_jax.app.audit", fromlist=["a"]).AuditConfig(dataset="digits", adversarial_mutants=5, adversarial_images=0).validate(), ValueError, r"adversarial_mutants is read only when the robustness section attacks images"),
 ("ev.model_parameter_randomisation with the model's own key", lambda: ev.model_parameter_randomisation(jax.random.key(0), lambda c, v, t: batched_.saliency(c, v, target=t), _CLF, _XB, target=0), ValueError, r"key draws exactly the model's own weights"),
 # Eleventh trial (668 calls: 1 half-written file, 17 silent of which 4 undetectable, 15 cryptic).
 ("reporting.save_results an array value", lambda: reporting.save_results(str(__import__("tempfile").mkdtemp()), {"a": 1.0, "b": np.zeros(2)}, echo=False), TypeError, r"results must be JSON-serialisable.*\.tolist\(\)"),
 ("mutation.label_change_rate zero mutants", lambda: mutation.label_change_rate(_CLF, jax.tree.map(lambda a: a[:0], _muts()), _XB), ValueError, r"mutants must hold at least one mutant"),
 ("mutation.mutant_predictions make_mutants' pair", lambda: mutation.mutant_predictions(_CLF, (_muts(), {"drawn": 2}), _XB), ValueError, r"the \(mutants, info\) pair that make_mutants returns"),
 ("batched.compute_convergence_delta attributions of another shape", lambda: batched_.compute_convergence_delta(_CLF, np.zeros((4, 8, 8, 3), np.float32), _XB, target=0), ValueError, r"attributions must have the shape of x \(4, 8, 8, 1\)"),
 ("from_functions integer logits", lambda: models.from_functions(lambda p, v: jnp.zeros((len(v), 10), jnp.int32), {"w": np.zeros(1)}, input_shape=(8, 8, 1), num_classes=10), ValueError, r"float class scores.*dtype int32"),
 ("from_functions params None", lambda: models.from_functions(lambda p, v: v.reshape(len(v), -1), None, input_shape=(8, 8, 1), num_classes=64), TypeError, r"params must be the model's weights.*got None"),
 ("from_functions split of one argument", lambda: models.from_functions(lambda p, v: v.reshape(len(v), -1) @ p, np.zeros((64, 10), np.float32), input_shape=(8, 8, 1), num_classes=10, splits={"mid": (lambda v: v, lambda h: h)}), TypeError, r"splits\['mid'\]'s features must be a function features\(params, x\)"),
 ("conventions.to_unit_float negative integers", lambda: __import__("explicable_jax.conventions", fromlist=["c"]).to_unit_float(np.array([[[[-5]]]], np.int16)), ValueError, r"integer pixels, which must lie in 0..255"),
 ("ev.faithfulness_correlation one sample", lambda: ev.faithfulness_correlation(K, _CLF, _XB, _XB, target=0, n_perturb_samples=1, subset_size=4), ValueError, r"n_perturb_samples must be at least 2"),
 ("batched.saliency string targets", lambda: batched_.saliency(_CLF, _XB, target=np.array(["a"] * 4)), ValueError, r"got an array of dtype <U1 \(class names\?"),
 ("models.save path None", lambda: models.save(None, _CLF), TypeError, r"path must be a folder path"),
 ("models.as_classifier swapped", lambda: models.as_classifier(_CLF, 5), TypeError, r"as_classifier\(name, value, ...\) takes the argument's name first"),
 ("Checkpointer.restore a step it lacks", lambda: training.Checkpointer(str(__import__("tempfile").mkdtemp())).restore(training.create_train_state(K, _CLF, optax.sgd(0.1)), step=99), ValueError, r"step must be one of the checkpointed steps \[\]"),
 ("fit callback with a Keras hook", lambda: training.fit(training.create_train_state(K, _CLF, optax.sgd(0.1)), _ds(), train_step=training.make_train_step(losses.cross_entropy_loss, optax.sgd(0.1)), epochs=1, batch_size=674, progress=False, callbacks=[type("C", (training.Callback,), {"on_epoch_end": lambda self, e: None})()]), TypeError, r"defines on_epoch_end, which fit never calls"),
 ("fit callback hook of two arguments", lambda: training.fit(training.create_train_state(K, _CLF, optax.sgd(0.1)), _ds(), train_step=training.make_train_step(losses.cross_entropy_loss, optax.sgd(0.1)), epochs=1, batch_size=674, progress=False, callbacks=[type("C", (training.Callback,), {"on_log": lambda self, step, record: None})()]), TypeError, r"callbacks\[0\].on_log must be a function on_log\(self, record\)"),
 # Twelfth trial (779 calls: 8 silent of which 2 debatable, 5 undetectable, 16 cryptic).
 ("Classifier.with_params integer weights", lambda: _CLF.with_params(jax.tree.map(lambda a: np.asarray(a).astype(np.int32), _CLF.params)), ValueError, r"must hold floats as the model's \(float32\); got dtype int32"),
 ("data.load of a loader returning (x, y)", lambda: _load_registered(lambda split, data_dir=None, source="auto", seed=0: (np.zeros((2, 4)), np.zeros(2))), TypeError, r"the loader registered as dataset '_trial12_tuple' must return a data.Dataset; it returned tuple \(an \(x, y\) tuple\?"),
 ("data.register_dataset loader without the keywords", lambda: data.register_dataset("_trial12_form", lambda split: None), TypeError, r"loader must be called as loader\(split, data_dir=None, source='auto', seed=0\); <lambda> takes no data_dir, source, seed keyword"),
 ("TrainConfig keep_checkpoints -1", lambda: training.TrainConfig(keep_checkpoints=-1).validate(), ValueError, r"keep_checkpoints"),
 ("rrr.model_input_gradients labels out of range", lambda: rrr.model_input_gradients(_CLF, _XB, classes="true", labels=np.full(4, 12)), ValueError, r"labels.*\[0, 10\)"),
 ("data.load mnist.npz without the test split", lambda: data.load("mnist", "test", data_dir=_damaged_npz("keys"), source="local"), ValueError, r"the MNIST file '.*mnist.npz' must hold x_train, y_train, x_test, y_test .*; it lacks 'x_test', 'y_test'"),
 ("data.load a truncated mnist.npz", lambda: data.load("mnist", data_dir=_damaged_npz("truncated"), source="local"), ValueError, r"the MNIST file '.*mnist.npz' (is not an .npz file|is damaged)"),
 ("reporting.cached_arrays a truncated cache", lambda: reporting.cached_arrays(os.path.join(_damaged_npz("truncated"), "mnist.npz"), lambda: {"a": np.zeros(2)}), ValueError, r"cached_arrays: the cache '.*' (is not an .npz file|is damaged)"),
 ("Classifier.logits None", lambda: _CLF.logits(None), ValueError, r"^x must be given \(inputs, see explicable_jax.conventions\); got None"),
 # Twelfth trial's cryptic cases, named now.
 ("from_nnx class_names of another count", lambda: models.from_nnx(nnx.Linear(8, 4, rngs=nnx.Rngs(0)), input_shape=(8,), class_names=["a", "b", "c"]), ValueError, r"shape \(2, 3\) \(class_names has 3 names\); it returns shape \(2, 4\).*pass the class_names of its 4 classes"),
 ("from_linen train_keyword it does not take", lambda: (lambda m: models.from_linen(m, m.init(K, jnp.zeros((1, 8))), input_shape=(8,), train_keyword="training"))(_linen_dense()), ValueError, r"train_keyword='training' is not a parameter of Dense.__call__, which takes \['x', 'train'\]"),
 ("models.classifier a batch of keys", lambda: models.classifier(jax.random.split(K, 3), "mlp", input_shape=(8,), num_classes=4), TypeError, r"key must be one PRNG key; got a batch of keys of shape \(3,\)"),
 ("Classifier.apply a batch of keys", lambda: _CLF.apply(_XB, train=True, key=jax.random.split(K, 4)), TypeError, r"key must be one PRNG key; got a batch of keys of shape \(4,\)"),
 ("a registered builder returning None", _register_none_builder, TypeError, r"model '_trial12_none''s builder must return an nnx.Module or a models.Classifier; it returned NoneType"),
 ("models.load weights without their metadata", lambda: models.load(_damaged_weights()), ValueError, r"the weights in '.*' cannot be read \(missing or damaged metadata"),
 ("losses.certainty_penalty arguments swapped", lambda: losses.certainty_penalty(_XB, _CLF.logits), TypeError, r"model_fn must be a function; got ndarray of shape \(4, 8, 8, 1\), and x \(an array\) was given a function: are the two swapped\? The call is \(model_fn, x\)"),
 ("losses.input_gradient_penalty arguments swapped", lambda: losses.input_gradient_penalty(_XB, _CLF.logits, np.ones_like(_XB)), TypeError, r"model_fn must be a function; got ndarray.*are the two swapped"),
 ("metrics.hard_soft_scores a 3x3 matrix for class 3", lambda: metrics.hard_soft_scores({"a": [1, 3], "b": [2, 2]}, [0, 0], np.eye(3)), ValueError, r"similarity_matrix is 3x3 \(classes 0..2\), but preds_by_model\['a'\] holds class 3"),
 ("ev.layer_groups another example_shape", lambda: ev.layer_groups(_CLF, (8, 8, 3)), ValueError, r"example_shape must be the model's input_shape \(8, 8, 1\); got \(8, 8, 3\)"),
 ("ev.layer_groups a batch's shape", lambda: ev.layer_groups(_CLF, (2, 8, 8, 1)), ValueError, r"example_shape must be the model's input_shape \(8, 8, 1\); got \(2, 8, 8, 1\) \(a batch's shape\? drop the batch axis\)"),
 ("robustness.train_substitute an empty x_seed", lambda: robustness.train_substitute(K, _CLF, lambda k: _CLF.params, _CLF.logits_with, _XB[:0], rounds=1, epochs=1), ValueError, r"x_seed must hold at least one image"),
 ("robustness.train_substitute an oracle returning labels", lambda: robustness.train_substitute(K, lambda v: jnp.argmax(_CLF.logits(v), -1), lambda k: _CLF.params, _CLF.logits_with, _XB, rounds=1, epochs=1), ValueError, r"oracle must return class scores \(N, C\).*returns shape \(2,\) of dtype int32 \(labels\?"),
 # Thirteenth trial (822 calls: 6 silent, 8 undetectable, 6 cryptic, 1 exit).
 ("training.evaluate a model with NaN weights", lambda: training.evaluate(_CLF.with_params(jax.tree.map(lambda a: a * np.nan, _CLF.params)), _ds()), ValueError, r"the model's logits \(evaluate\) holds NaN or inf in \d+ example"),
 ("rrr.model_input_gradients labels with classes='sum'", lambda: rrr.model_input_gradients(_CLF, _XB, labels=_YB), ValueError, r"labels are read only with classes='true'; got labels with classes='sum'"),
 ("a train step given a Classifier", lambda: training.make_train_step(losses.cross_entropy_loss, optax.sgd(0.1))(_CLF, {"x": _XB, "y": _YB}), TypeError, r"state must be a training.TrainState .*; got Classifier: a Classifier holds no optimiser state"),
 ("make_mutants accuracy_fn the gate factory", lambda: mutation.make_mutants(K, _CLF, 2, "GF", 0.1, accuracy_fn=mutation.accuracy_gate), TypeError, r"accuracy_fn must be the gate built for a validation set, mutation.accuracy_gate\(model, x_val, y_val\)"),
 ("make_mutants accuracy_fn of two arguments", lambda: mutation.make_mutants(K, _CLF, 2, "GF", 0.1, accuracy_fn=lambda a, b: 1.0), TypeError, r"accuracy_fn must be a function stacked mutants -> their \(batch,\) accuracies"),
 ("data.register_dataset a loader of no arguments", lambda: data.register_dataset("_trial13_noargs", lambda: None), TypeError, r"<lambda> takes no split argument and no data_dir, source, seed keyword"),
 ("class_score_fn target 'predicted'", lambda: attribution.class_score_fn(_CLF.logits, "predicted"), ValueError, r"target must be a class index .*; got the string 'predicted': the batched methods"),
 ("reporting.make_page an unfilled placeholder", lambda: _make_page({"NAME": "x"}), ValueError, r"keeps the placeholder \{\{OTHER\}\}, which build does not fill \(it fills \['NAME'\]\)"),
 ("reporting.make_page a number for a placeholder", lambda: _make_page({"NAME": 1, "OTHER": "y"}), ValueError, r"build must return text for every placeholder; it returned int 1 for \{\{NAME\}\}"),
 # Fourteenth trial (603 calls: 3 silent, 4 cryptic, 0 crash).
 ("fit with a loss of swapped arguments", lambda: training.fit(training.create_train_state(K, _CLF, optax.sgd(0.1)), _ds(), train_step=training.make_train_step(lambda b, lg, p: losses.cross_entropy(lg, b["y"]), optax.sgd(0.1)), epochs=1, batch_size=674, progress=False), TypeError, r"loss_fn must be loss_fn\(logits, batch, params\) -> \(B,\) per-example losses .*calling it so fails: .*\(its arguments in another order\?\)"),
 ("detection.fit_combiner qda of fewer examples than features", lambda: detection.fit_combiner("qda", np.random.default_rng(0).standard_normal((4, 10)), np.array([0, 1, 0, 1], bool)), ValueError, r"features cannot fit a 'qda' combiner: a class's covariance of the 10 feature columns is singular \(2 wrong and 2 right predictions"),
 ("from_linen the variables of another model", lambda: (lambda m: models.from_linen(m, {"params": {"Dense_0": {"kernel": jnp.zeros((3, 10)), "bias": jnp.zeros(10)}}}, input_shape=(8,)))(_linen_dense()), ValueError, r"variables do not fit the module: its parameters have other shapes than the given ones"),
 ("from_linen variables missing a parameter", lambda: (lambda m: models.from_linen(m, {"params": {"Other": {"kernel": jnp.zeros((8, 10))}}}, input_shape=(8,)))(_linen_dense()), ValueError, r"variables do not fit the module: a parameter the module reads is missing"),
 # Fifteenth trial (561 calls: 7 silent, 6 cryptic, 0 crash).
 ("metrics.hard_soft_scores a distance matrix", lambda: metrics.hard_soft_scores({"a": [1, 2], "b": [2, 2]}, [0, 0], 1 - np.eye(3)), ValueError, r"similarity_matrix must be a similarity matrix whose diagonal .* is positive; rows \[0, 1, 2\] have W\[y, y\] = 0"),
 ("similarity.explicability_matrix a distance matrix", lambda: similarity.explicability_matrix(np.ones((3, 3)), 1 - np.eye(3)), ValueError, r"matrices\[1\] must be a similarity matrix whose diagonal"),
 ("similarity.explicability_matrix a list of matrices", lambda: similarity.explicability_matrix([np.eye(3), np.eye(3)]), TypeError, r"explicability_matrix takes the matrices as separate arguments.*unpack it: explicability_matrix\(\*matrices\)"),
 ("training.evaluate data of another class order", lambda: training.evaluate(_CLF.replace(class_names=tuple("abcdefghij")), data.Dataset(_XB, _YB, 10, tuple("bacdefghij"))), ValueError, r"ds.class_names must name the model's classes in its output order; the model has \['a', 'b'.*\(they first differ at class 0\)"),
 ("ev.deletion_curve a layer's attribution", lambda: ev.deletion_curve(_CLF, _XB + 0.5, np.ones((4, 8)), target=_YB, n_steps=4), ValueError, r"attributions must have shape \(4, 8, 8, 1\) or \(4, 8, 8\) \(one value per pixel\), the input's; got shape \(4, 8\) \(a layer's attribution\?"),
 ("data.Dataset an extra that is not an array", lambda: data.Dataset(np.zeros((4, 8), np.float32), np.arange(4), 4, (), extras={"annotation": 3}), TypeError, r"extras\['annotation'\] must be an array with one row per example \(4 rows\); got int 3"),
 ("losses.make_rrr_loss annotation_key 'mask'", lambda: losses.make_rrr_loss(1.0, annotation_key="mask"), ValueError, r"annotation_key must name the batch's annotation entry .*; got 'mask', which is the batch's own padding-row mask"),
 # Sixteenth trial (414 calls: 8 silent, 7 cryptic, 0 crash).
 ("Classifier.logits centred images", lambda: _CLF.logits(np.linspace(0, 0.6, 256, dtype=np.float32).reshape(4, 8, 8, 1) - 0.5), ValueError, r"x must be float images in \[0, 1\] .*with mean .*: it looks centred"),
 ("deliberative.insecurities a split pair and 0..255 floats", lambda: deliberative.insecurities(*_CLF.split("conv_0"), np.full((2, 8, 8, 1), 200.0, np.float32)), ValueError, r"x must be float images in \[0, 1\].*0..255 pixels stored as floats"),
 ("metrics.hard_soft_scores one model", lambda: metrics.hard_soft_scores({"a": [1, 2]}, [0, 0], np.eye(3)), ValueError, r"preds_by_model must hold at least 2 models"),
 ("from_linen dropout without a key", lambda: _linen_dropout().apply(np.zeros((3, 8), np.float32), train=True), ValueError, r"apply\(x, train=True\) needs key= for this model's 'dropout' RNG stream"),
 ("from_linen dropout under another rng_name", lambda: _linen_dropout(rng_name="drop").apply(np.zeros((3, 8), np.float32), train=True, key=K), ValueError, r"the model draws from the RNG stream 'dropout', but it was adapted with rng_name='drop'"),
 ("models.register_model a builder of one argument", lambda: models.register_model("_trial16_one", lambda a: a), TypeError, r"builder must be a function builder\(input_shape, num_classes, rngs, \*\*options\)"),
 ("stats.paired_bootstrap one bare array", lambda: stats.paired_bootstrap(K, lambda a: float(np.mean(a)), np.arange(8.0), n_resamples=10), TypeError, r"arrays must be a sequence of arrays .*; got one ndarray of shape \(8,\): wrap it"),
 ("stats.bootstrap_mistake_similarity_difference a model without mistakes", lambda: stats.bootstrap_mistake_similarity_difference(K, np.arange(8) % 4, (np.arange(8) + 1) % 4, np.arange(8) % 4, np.eye(4) + 0.1, n_resamples=10), ValueError, r"preds_b has no mistakes"),
 ("reporting.cached_arrays a ragged value", lambda: reporting.cached_arrays(os.path.join(__import__("tempfile").mkdtemp(), "c.npz"), lambda: {"a": np.zeros(2), "b": [1, [2, 3]]}), ValueError, r"cached_arrays: fn\(\) must return a dict of arrays; its 'b' is not one"),
 # Seventeenth trial (393 calls: 10 silent, 4 cryptic, 0 crash).
 ("similarity.as_stored_by_authors a distance matrix", lambda: similarity.as_stored_by_authors("ekl", 1 - np.eye(3)), ValueError, r"weights must be a similarity matrix whose diagonal .* is positive"),
 ("losses.weighted_targets softmax of a distance matrix", lambda: losses.weighted_targets(1 - np.eye(3), target="softmax"), ValueError, r"weights must be a similarity matrix whose diagonal"),
 ("losses.weighted_targets CHL ratings on another scale", lambda: losses.weighted_targets(np.full((3, 3), 50.0) + 50 * np.eye(3), target="authors", kind="chl"), ValueError, r"weights must be the raw CHL ratings \(0-4, diagonal 4\) for kind='chl'; got entries up to 100"),
 ("deliberative.make_hardness_loss one class", lambda: deliberative.make_hardness_loss(1), ValueError, r"num_classes must be at least 2"),
 ("label_change_rate true labels as original_predictions", lambda: mutation.label_change_rate(_CLF, _muts(), _XB, original_predictions=(np.asarray(_CLF.logits(_XB)).argmax(-1) + 1) % 10), ValueError, r"original_predictions must be the model's own labels f\(x\) .*differ from its argmax on 4 of the first 4 inputs"),
 ("models.load a model.json without input_shape", lambda: models.load(_meta_without("input_shape")), ValueError, r"holds a damaged model.json: its recipe for model 'cnn' lacks input_shape"),
 ("mutation.make_mutants an option the operator lacks", lambda: mutation.make_mutants(K, _CLF, 2, "NAI", 0.5, sigma=2.0), TypeError, r"operator .NAI. takes the options layers, granularity; got unknown option sigma"),
 ("detection.fit_combiner an option scikit-learn's model lacks", lambda: detection.fit_combiner("lda", np.random.default_rng(0).standard_normal((20, 3)), np.arange(20) % 2 == 0, n_estimators=5), TypeError, r"kind='lda' \(scikit-learn's LinearDiscriminantAnalysis\) takes no option n_estimators"),
 # Eighteenth trial (800 calls: 12 silent, 12 cryptic, 1 crash).
 ("from_nnx stages that do not compose to the module", lambda: models.from_nnx(_Seq(), layers=[("a", lambda m, v: m.a(v)), ("b", lambda m, h: m.b(h))], input_shape=(8,)), ValueError, r"layers' stage functions must compose to the module: .*differ from module\(x\)"),
 ("from_nnx own dropout stream, train without a key", lambda: models.from_nnx(_OwnDrop(), input_shape=(8,)).apply(np.zeros((2, 8), np.float32), train=True), ValueError, r"apply\(x, train=True\) needs key= for this model's RNG stream\(s\) \['dropout'\]"),
 ("fit eval_ds of another class order", lambda: training.fit(training.create_train_state(K, _CLF, optax.sgd(0.1)), data.Dataset(_XB, _YB, 10, tuple("abcdefghij")), train_step=training.make_train_step(losses.cross_entropy_loss, optax.sgd(0.1)), epochs=1, batch_size=4, eval_ds=data.Dataset(_XB, _YB, 10, tuple("jihgfedcba")), progress=False), ValueError, r"eval_ds.class_names must be the training set's, in its order"),
 ("attribution.upsample NaN maps", lambda: attribution.upsample(np.full((2, 4, 4), np.nan), (8, 8)), ValueError, r"maps holds NaN or inf"),
 ("Classifier.logits_with arguments swapped", lambda: _CLF.logits_with(_XB, _CLF.params), TypeError, r"logits_with\(params, x\) takes the parameters first; .*are the two swapped"),
 ("losses.certainty_penalty an unknown option", lambda: losses.certainty_penalty(_CLF.logits, _XB, foo=1), TypeError, r"certainty_penalty takes the options scale, classes, labels, normalize; got unknown option foo"),
 ("rrr.model_input_gradients an unknown option", lambda: rrr.model_input_gradients(_CLF, _XB, scal="log"), TypeError, r"model_input_gradients takes the options .*; got unknown option scal"),
 ("models.save under a file", lambda: models.save(os.path.join(__file__, "m"), _CLF), NotADirectoryError, r"path '.*' lies under '.*test_reliability.py', which is a file"),
 ("from_linen naming a layer it lacks", lambda: (lambda nn: (lambda m: models.from_linen(m, m.init(K, jnp.zeros((1, 64))), input_shape=(64,), num_classes=10, layers=["Dense_7"]))(nn.Dense(10)))(__import__("flax.linen", fromlist=["nn"])), ValueError, r"layers names 'Dense_7', which the model's forward pass does not reach"),
 # Nineteenth trial (682 calls: 6 silent, 4 cryptic, 2 crash; the crash is
 # test_fit_resumes_past_a_newest_checkpoint_whose_item_folder_is_gone).
 ("mutation.make_mutants a model's function for the model", lambda: mutation.make_mutants(K, _CLF.logits, 2, "GF", 0.1), TypeError, r"model must hold parameter arrays .*got method \(a function: pass the model itself"),
 ("mutation.gaussian_fuzzing a dict of strings", lambda: mutation.gaussian_fuzzing(K, {"a": "x"}, 0.1), TypeError, r"params must hold parameter arrays .*got str at 'a'"),
 ("rrr.find_another_explanation a misspelt loss option", lambda: rrr.find_another_explanation(K, _ds(), n_models=1, make_model=lambda k: models.classifier(k, "mlp", input_shape=(8, 8, 1), num_classes=10, hidden=(8,)), optimizer=optax.sgd(0.1), epochs=1, batch_size=64, mask_scal="linear"), TypeError, r"find_another_explanation takes, besides its own arguments, the options of losses.make_rrr_loss l2, scale, .*got unknown option mask_scal"),
 ("robustness.black_box a misspelt training option", lambda: robustness.black_box(K, _CLF.logits, _XB, _YB, 0.1, init_fn=lambda k: {"w": jnp.zeros((64, 10))}, apply_fn=lambda p, z: z.reshape(len(z), -1) @ p["w"], x_seed=_XB, round=1), TypeError, r"black_box takes, besides its own arguments, the options of train_substitute rounds, .*got unknown option round"),
 ("losses.certainty_penalty NaN inputs", lambda: losses.certainty_penalty(_lin_model, _NAN_X), ValueError, r"x holds NaN or inf in 1 example\(s\), indices 0"),
 ("losses.input_gradient_penalty NaN inputs", lambda: losses.input_gradient_penalty(_lin_model, _NAN_X, np.ones(_NAN_X.shape, bool)), ValueError, r"x holds NaN or inf in 1 example"),
 ("losses.input_gradients NaN inputs", lambda: losses.input_gradients(_lin_model, _NAN_X), ValueError, r"x holds NaN or inf in 1 example"),
 ("ev.area_under_curve reversed fractions", lambda: ev.area_under_curve(ev.Curve(jnp.linspace(1, 0, 5), jnp.ones((1, 5)))), ValueError, r"curve.fractions must rise from 0 to 1 .*got \[1.0, 0.75"),
 # Twentieth trial (589 calls: 6 silent, 9 cryptic, 0 crash).
 ("ev.sparseness a tuple of maps", lambda: ev.sparseness((np.ones((5, 4, 4)), np.ones((5, 4, 4)))), ValueError, r"attributions must be one array of maps \(N, ...\), one map per example; got a tuple of 2 arrays"),
 ("ev.pointing_game a tuple of maps and masks", lambda: ev.pointing_game((np.ones((5, 4, 4)),) * 2, (np.ones((5, 4, 4), bool),) * 2), ValueError, r"attributions must be one array of maps"),
 ("attribution.per_feature_map a list of per-example maps", lambda: attribution.per_feature_map([np.ones((4, 4, 3))] * 2), ValueError, r"got a list of 2 arrays.*np.stack\(maps\)"),
 ("ev.entropy a Curve", lambda: ev.entropy(ev.Curve(jnp.linspace(0, 1, 3), jnp.ones((2, 3)))), ValueError, r"attributions must be attribution maps \(N, ...\); got a Curve, a named result"),
 ("ev.deletion_curve a Curve as the maps", lambda: ev.deletion_curve(_CLF, _XB, ev.Curve(jnp.linspace(0, 1, 3), jnp.ones((4, 3))), target=_YB), ValueError, r"got a Curve, a named result"),
 ("from_functions splits as a pair", lambda: models.from_functions(lambda p, v: v.reshape(len(v), -1) @ p, jnp.ones((64, 10)), input_shape=(8, 8, 1), num_classes=10, splits=(lambda p, v: v, lambda p, h: h)), TypeError, r"splits must be a mapping \{layer name: \(features, head\)\}.*got a tuple of 2"),
 # Twenty-first trial (566 calls: 5 silent, 1 cryptic, 0 crash; the traced
 # cases are test_a_traced_class_index_outside_the_classes_gives_nan).
 ("training.eval_batch labels out of range", lambda: training.eval_batch(_CLF, _XB, np.array([10, 0, 1, 2]), num_classes=10), ValueError, r"y must lie in \[0, 10\) for 10 classes; got values from 0 to 10"),
 ("training.data_parallel a number for the step", lambda: training.data_parallel(3), TypeError, r"step must be a function; got int 3"),
 # Twenty-second trial (660 calls: 3 silent, 3 cryptic, 0 crash).
 ("ev.deletion_curve attributions and inputs swapped", lambda: ev.deletion_curve(_CLF, np.where(np.arange(256).reshape(4, 8, 8, 1) % 3 == 0, 0.0, np.linspace(-0.3, 0.3, 256).reshape(4, 8, 8, 1)).astype(np.float32), np.random.default_rng(0).random((4, 8, 8, 1)), target=_YB, n_steps=4), ValueError, r"inputs must be float images in \[0, 1\].*of the non-zero ones negative: it looks centred .*or like signed maps \(attributions: the arguments swapped\?\)"),
 ("losses.make_weighted_loss a dict", lambda: losses.make_weighted_loss({"a": 1}), TypeError, r"weights must be a \(C, C\) similarity matrix of numbers; got dict"),
 ("training.predict inside jit", lambda: jax.jit(lambda v: training.predict(_CLF, v))(_XB), TypeError, r"the inputs are traced .*inside jit call the model itself \(clf.logits\(x\)\)"),
 ("app.detect.markdown a list", lambda: __import__("explicable_jax.app.detect", fromlist=["markdown"]).markdown([1, 2]), TypeError, r"table must be the non-empty mapping score name -> row that detection.score_table returns; got list"),
 # Twenty-third trial (544 calls: 2 silent, 2 cryptic, 0 crash; the traced
 # 0..255 images are test_traced_images_far_off_the_unit_scale_give_nan).
 ("from_functions a function as the params", lambda: models.from_functions(lambda p, v: v.reshape(len(v), -1) @ jnp.ones((64, 10)), lambda: 0, num_classes=10, input_shape=(8, 8, 1)), TypeError, r"params must hold parameter arrays .*got function"),
 ("metrics.bootstrap_auroc_difference without its key", lambda: metrics.bootstrap_auroc_difference(np.linspace(0, 1, 12), np.linspace(1, 0, 12), np.arange(12) % 2 == 0, np.arange(12) % 2 == 0), TypeError, r"key must be a PRNG key from jax.random.key\(seed\); got an array of dtype float64 \(the key comes first: bootstrap_auroc_difference\(key, ...\)\)"),
 # Twenty-fourth trial (666 calls: 1 silent, 13 cryptic, 0 crash).
 ("batched.saliency an empty batch", lambda: batched_.saliency(_CLF, _XB[:0], target=0), ValueError, r"x must hold at least one example; got an empty batch"),
 ("metrics.auroc inside jit", lambda: jax.jit(metrics.auroc)(np.arange(4.0), np.array([0, 1, 0, 1], bool)), TypeError, r"auroc computes on the host \(numpy\) and cannot be traced; it was given traced scores, is_positive"),
 ("deliberative.insecurities inside jit", lambda: jax.jit(lambda v: deliberative.insecurities(*_CLF.split("conv_0"), v, top_k=3))(_XB), TypeError, r"insecurities computes on the host \(numpy\) and cannot be traced"),
 ("robustness.fgsm a traced epsilon", lambda: jax.jit(lambda e: robustness.fgsm(_CLF.logits, _XB, _YB, e))(0.1), TypeError, r"epsilon must be a concrete number \(a Python int or float\); got a traced value"),
 ("mutation.weight_shuffling params None", lambda: mutation.weight_shuffling(K, None, 0.5), TypeError, r"params must hold parameter arrays .*got NoneType with none"),
 ("data.rrr.toy_colors_rules 8x8 images", lambda: __import__("explicable_jax.data.rrr", fromlist=["toy_colors_rules"]).toy_colors_rules(np.zeros((1, 8, 8, 1), np.float32)), ValueError, r"images must be Toy Colors images \(N, 5, 5, 3\)"),
 # Twenty-fifth trial (696 calls: 7 silent (3 problems), 2 cryptic, 0 crash).
 ("mutation.sprt_detect alpha + beta above 1", lambda: mutation.sprt_detect(np.random.default_rng(0).random((16, 10)) > 0.7, 0.1, alpha=0.7, beta=0.7), ValueError, r"alpha \+ beta must be below 1 \(Wald's test"),
 ("viz.insecurity_outline a misspelt colour", lambda: viz.insecurity_outline(np.zeros((8, 8, 1)), np.eye(8, dtype=bool), color="yelow"), ValueError, r"color must be a matplotlib colour .*got 'yelow'"),
 ("robustness.corruption_suite no severities", lambda: list(robustness.corruption_suite(K, _XB, corruptions=("contrast",), severities=())), ValueError, r"severities must hold at least one entry"),
 ("training.train_and_evaluate a dict config", lambda: training.train_and_evaluate({"dataset": "digits", "epochs": 1}, None), TypeError, r"config must be the run's TrainConfig .*got dict: TrainConfig\(\*\*d\) builds one"),
 ("attribution.integrated_gradients one-example form with target=", lambda: attribution.integrated_gradients(_CLF, _XB, target=0), TypeError, r"integrated_gradients\(score_fn, x\) is the one-example form and takes no target.*attribution.batched.integrated_gradients"),
 # Twenty-sixth trial (710 calls: 7 silent (6 problems), 1 cryptic, 0 crash).
 ("training.save_model a Classifier as the state", lambda: training.save_model("/nonexistent/m", _CLF, training.TrainConfig(), _ds()), TypeError, r"state must be the run's TrainState .*got Classifier: a bare model is saved with models.save"),
 ("batched.smoothgrad vargrad of one sample", lambda: batched_.smoothgrad(K, _CLF, _XB, target=0, stdevs=0.1, n_samples=1, nt_type="vargrad"), ValueError, r"n_samples must be at least 2 for nt_type='vargrad'"),
 ("ev.sensitivity_max maps of another shape", lambda: ev.sensitivity_max(K, lambda m, z, t: z.reshape(len(z), -1)[:, :3], _CLF, _XB + 0.5, target=_YB, n_perturb_samples=2), ValueError, r"explanation_func must return maps of the inputs' shape \(4, 8, 8, 1\) or of a leading part"),
 ("robustness.jacobian_augmentation a zero step", lambda: robustness.jacobian_augmentation(_CLF.logits, _XB, _YB, 0.0), ValueError, r"step_size must be a positive number; got 0.0"),
 ("data.paper_split_indices one test example", lambda: data.paper_split_indices(1), ValueError, r"num_test must be at least 2"),
 ("data.local_data_dir a file", lambda: data.local_data_dir(__file__), NotADirectoryError, r"data_dir must be a folder; got the file"),
 # Twenty-seventh trial (601 calls: 2 silent (1 problem), 3 cryptic, 0 crash).
 ("deliberative.top_fraction_mask channel-last maps", lambda: deliberative.top_fraction_mask(np.random.default_rng(0).random((2, 8, 8, 1)), 0.2), ValueError, r"maps must be \(..., H, W\) maps, channel axis dropped; got shape \(2, 8, 8, 1\).*pass maps\[..., 0\]"),
 ("attribution.layer_conductance given a classifier and layer=", lambda: attribution.layer_conductance(_CLF, _XB, layer="conv_0", target=0), TypeError, r"layer_conductance\(features_fn, head_fn, x, ...\) takes the model split at the layer: layer_conductance\(\*clf.split\(layer\), x"),
 # Twenty-eighth trial (593 calls: 1 silent (borderline), 3 cryptic, 0 crash).
 ("mutation rate traced inside jit", lambda: jax.jit(lambda r: mutation.gaussian_fuzzing(K, _CLF.params, r))(0.1), TypeError, r"rate must be a concrete number .*got a traced value"),
 ("jsma theta traced inside jit", lambda: jax.jit(lambda t: robustness.jsma(_CLF, _XB, _YB, theta=t))(1.0), TypeError, r"theta must be a concrete number|jsma computes on the host"),
 ("input method given the batched clf.logits", lambda: attribution.gradient(_CLF.logits, _XB[0]), TypeError, r"score_fn must map one example to a scalar score; got a Classifier's logits, which maps a batch to logits: wrap it, attribution.class_score_fn"),
 ("input method given the classifier", lambda: attribution.integrated_gradients(_CLF, _XB[0]), TypeError, r"score_fn must map one example to a scalar score; got a Classifier,"),
 ("viz.save to an unknown format", lambda: __import__("explicable_jax.viz", fromlist=["viz"]).save(__import__("explicable_jax.viz", fromlist=["viz"]).heatmap(np.eye(2)), "/tmp/ej_unused.xyz"), ValueError, r"path must end in an image format matplotlib writes \(.*\.png.*\); got '/tmp/ej_unused.xyz'"),
 # Twenty-ninth trial (575 calls: 0 silent, 0 cryptic, 0 crash; 2 undetectable, made warnings).
 ("robustness.random_targets one class", lambda: robustness.random_targets(K, np.zeros(3, np.int32), 1), ValueError, r"num_classes must be at least 2 \(.*\); got 1"),
 ("models.classifier one class", lambda: models.classifier(K, "mlp", input_shape=(4,), num_classes=1), ValueError, r"num_classes must be at least 2 \(a classifier tells at least 2 classes apart\); got 1"),
 ("models.from_functions one class", lambda: models.from_functions(lambda p, v: v @ p, np.ones((4, 1), np.float32), input_shape=(4,), num_classes=1), ValueError, r"num_classes must be at least 2"),
 ("metrics.confusion_matrix one class", lambda: metrics.confusion_matrix(np.zeros(3, np.int32), np.zeros(3, np.int32), 1), ValueError, r"num_classes must be at least 2"),
 ("sprt_detect no inputs", lambda: mutation.sprt_detect(np.zeros((6, 0), bool), 0.05), ValueError, r"label_changes must be \(n_mutants, N\), at least one mutant and one input; got shape \(6, 0\)"),
 ("AuditConfig bad setting when built", lambda: __import__("explicable_jax.app.audit", fromlist=["AuditConfig"]).AuditConfig(coverage=90), ValueError, r"coverage must be a number in \[0, 1\]; got 90"),
 ("AuditConfig misspelt similarity when built", lambda: __import__("explicable_jax.app.audit", fromlist=["AuditConfig"]).AuditConfig(similarity="wordnet"), ValueError, r"similarity must be one of ekl, ihl, chl"),
 ("AuditConfig rate 0", lambda: __import__("explicable_jax.app.audit", fromlist=["AuditConfig"]).AuditConfig(rates=(0.0,)), ValueError, r"rates must be a number in \(0, 1\]; got 0.0"),
 # Thirtieth trial (621 calls: 0 silent, 1 cryptic (borderline), 0 crash).
 ("logits of a model built with a batch axis in input_shape", lambda: models.classifier(K, "mlp", input_shape=(4, 8, 8, 1), num_classes=10, hidden=(8,)).logits(_XB), ValueError, r"got a batch of shape \(4, 8, 8, 1\). It is one example: add the batch axis, x\[None\]; or input_shape holds a batch axis: build the model with input_shape=\(8, 8, 1\)"),
 # Thirty-first trial (470 calls: 1 silent (borderline), 2 cryptic, 0 crash).
 ("train_detector constant features", lambda: detection.train_detector(K, np.ones((20, 4), np.float32), np.arange(20) % 3 == 0, epochs=1, hidden=(4,)), ValueError, r"features must vary across the training examples; every one of its 4 columns is constant over the 20 rows"),
 ("HtmlReport.png a string", lambda: __import__("explicable_jax.app.html_report", fromlist=["h"]).HtmlReport("T").png("fig.png"), TypeError, r"data must be the bytes of a PNG file; got str \(a path\? pass open\(path, 'rb'\).read\(\)\)"),
 ("HtmlReport.figure not a figure", lambda: __import__("explicable_jax.app.html_report", fromlist=["h"]).HtmlReport("T").figure(123), TypeError, r"fig must be a matplotlib Figure \(e.g. ax.figure\); got int"),
 ("mutation operator given one bare array as params", lambda: mutation.gaussian_fuzzing(K, jnp.ones((3, 3)), 0.1), ValueError, r"params must be a pytree of named layer parameters \(e.g. clf.params\) for layers='conv'.*got a single array of shape \(3, 3\)"),
]
BAD_INPUTS += MORE_BAD_INPUTS


def _softmax_fn(v):
  return jax.nn.softmax(_CLF.logits(v))


WARNED_INPUTS = [
    # (id, call, regex of the warning): accepted, but never silently.
    ("sigmoid outputs as logits", lambda: losses.cross_entropy(jax.nn.sigmoid(jnp.linspace(-2, 2, 40).reshape(4, 10)), _YB), r"every one of the 40 class scores lies in \[0, 1\]"),
    ("t_test_over_seeds no spread", lambda: stats.t_test_over_seeds(np.array([0.01, 0.01, 0.01])), r"per-seed differences are identical"),
    ("ev.sparseness all-zero maps", lambda: ev.sparseness(np.zeros((3, 4, 4))), r"sparseness: 3 of 3 examples \(0, 1, 2\) have no defined score \(an all-zero map\)"),
    ("ev.entropy all-zero map", lambda: ev.entropy(np.r_[np.ones((1, 4, 4)), np.zeros((1, 4, 4))]), r"entropy: 1 of 2 examples \(1\)"),
    ("ev.relevance_mass_accuracy empty mask", lambda: ev.relevance_mass_accuracy(np.ones((2, 4, 4)), np.zeros((2, 4, 4), bool)), r"relevance_mass_accuracy: 2 of 2 examples"),
    ("ev.relevance_rank_accuracy empty mask", lambda: ev.relevance_rank_accuracy(np.ones((2, 4, 4)), np.zeros((2, 4, 4), bool)), r"an empty mask"),
    ("ev.pointing_game empty mask", lambda: ev.pointing_game(np.ones((2, 4, 4)), np.zeros((2, 4, 4), bool)), r"pointing_game: 2 of 2 examples"),
    ("jsma some targets are the predictions", lambda: robustness.jsma(_CLF, _XB, (np.asarray(_CLF.logits(_XB)).argmax(-1) + np.r_[0, 1, 1, 1]) % 10, gamma=0.01), r"jsma: 1 of 4 targets already are the model's predictions"),
    ("weighted targets prefer another class", lambda: losses.make_weighted_loss(np.eye(3) + np.array([[0, 2, 0], [0, 0, 0], [0, 0, 0]])), r"rows \[0\] another class has a larger weight"),
    ("pgd step larger than epsilon", lambda: robustness.pgd(K, _CLF, _XB, _YB, 0.03, step_size=0.5, steps=1), r"pgd: step_size=0.5 exceeds epsilon=0.03"),
    ("smoothgrad without noise", lambda: batched_.smoothgrad(K, _CLF, _XB, target=0, stdevs=0.0, n_samples=2), r"stdevs=0 adds no noise"),
    ("ev.spearman_rank_correlation constant map", lambda: ev.spearman_rank_correlation(np.ones((2, 4, 4)), np.random.default_rng(0).random((2, 4, 4))), r"spearman_rank_correlation: 2 of 2 examples"),
    ("corrupt defocus_blur off CIFAR's size", lambda: robustness.corrupt(K, _XB, "defocus_blur", 3), r"defocus_blur's CIFAR-10-C constants are for 32x32 RGB images"),
    ("fit keyword overriding config", lambda: training.fit(training.create_train_state(K, _CLF, optax.sgd(0.1)), _ds(), train_step=training.make_train_step(losses.cross_entropy_loss, optax.sgd(0.1)), config=training.FitConfig(epochs=1, batch_size=1024), batch_size=674, progress=False), r"keywords override config's settings: batch_size=674 \(config has 1024\)"),
    ("pointing_game constant maps", lambda: ev.pointing_game(np.zeros((2, 4, 4)), np.ones((2, 4, 4), bool)), r"pointing_game: 2 of 2 maps \(0, 1\) are constant"),
    ("t_test_over_seeds identical up to rounding", lambda: stats.t_test_over_seeds([0.1, 0.1, 0.1]), r"per-seed differences are identical"),
    ("save_results NaN", lambda: reporting.save_results(str(__import__("tempfile").mkdtemp()), {"a": {"b": float("nan")}}, echo=False), r"save_results: a.b is NaN or inf"),
    ("fit_mahalanobis fewer examples than dimensions", lambda: detection.scores.fit_mahalanobis(np.random.default_rng(0).random((6, 20)), np.arange(6) % 2, 2), r"fit_mahalanobis: 6 examples of 2 classes give a shared covariance of rank at most 4, below the 20 feature dimensions"),
    ("insertion_curve constant maps", lambda: ev.insertion_curve(_CLF, _XB + 0.5, np.zeros_like(_XB), target=_YB, n_steps=4), r"insertion_curve: 4 of 4 maps \(0, 1, 2, 3\) are constant, so their feature order is the tie order"),
    ("deletion_curve constant maps", lambda: ev.deletion_curve(_CLF, _XB + 0.5, np.ones_like(_XB), target=_YB, n_steps=4), r"deletion_curve: 4 of 4 maps"),
    ("label_change_rate mutants of another model", lambda: mutation.label_change_rate(_CLF, mutation.mutate_many(K, models.classifier(jax.random.key(7), "cnn", input_shape=(8, 8, 1), num_classes=10, widths=(4,), dense=8), 3, "GF", 0.1), _XB), r"mutants share 0.00% of their weights with the model .*mutants of another model"),
    ("bootstrap_auroc_difference one positive", lambda: metrics.bootstrap_auroc_difference(K, np.linspace(0, 1, 8), np.linspace(1, 0, 8), np.eye(8)[0].astype(bool), n_resamples=50), r"is_positive holds 1 positive example: every resample repeats it"),
    ("similarity.from_soft_labels labels in another order", lambda: similarity.from_soft_labels(np.eye(4)[np.arange(40) % 4], (np.arange(40) + 1) % 4, 4), r"from_soft_labels: the humans' most voted class agrees with labels on only 0.0%"),
    ("ev.faithfulness_correlation constant maps", lambda: ev.faithfulness_correlation(K, _CLF, _XB + 0.5, np.ones_like(_XB), target=_YB, n_perturb_samples=4, subset_size=8), r"faithfulness_correlation: 4 of 4 maps"),
    ("logits of integer 0/1 images", lambda: _CLF.logits((np.arange(256).reshape(4, 8, 8, 1) % 2).astype(np.int32)), r"x holds integer pixels that are all 0 or 1: integer pixels are read on the 0..255 scale"),
    ("Classifier.with_params NaN weights", lambda: _CLF.with_params(jax.tree.map(lambda w: w * np.nan, _CLF.params)), r"with_params: params hold NaN or inf"),
    ("weighted_targets softmax of a 0..255 matrix", lambda: losses.weighted_targets((np.eye(4) + 0.1) / 1.1 * 255, target="softmax"), r"rows \[0, 1, 2, 3\] of scale \* weights span more than 30 .*softmax targets are one-hot"),
    ("logits of all-ones integer images", lambda: _CLF.logits(np.ones((4, 8, 8, 1), np.int64)), r"x holds integer pixels that are all 0 or 1"),
    ("ev.relevance_mass_accuracy signed maps", lambda: ev.relevance_mass_accuracy(np.linspace(-1, 1, 64).reshape(1, 8, 8), np.eye(8, dtype=bool)[None]), r"relevance_mass_accuracy: the maps hold negative values.*pass np.abs\(maps\)"),
    ("mean_mistake_similarity matrix above 1", lambda: metrics.mean_mistake_similarity(np.r_[0, 1, 2], np.r_[1, 2, 0], (np.eye(3) + 1) * 50), r"similarity_matrix has entries up to 100, above 1: the mean is read in the matrix's units"),
    ("rrr.explanation_mask all-zero gradients", lambda: rrr.explanation_mask(np.r_[np.ones((1, 4, 4)), np.zeros((2, 4, 4))]), r"explanation_mask: 2 of 3 examples \(1, 2\) have all-zero input gradients, so their explanation is empty"),
    ("compute_convergence_delta attributions and x swapped", lambda: batched_.compute_convergence_delta(_CLF, _XB + 0.5, np.zeros_like(_XB), target=0), r"compute_convergence_delta: 4 of 4 examples of x \(0, 1, 2, 3\) equal their baseline.*attributions and x swapped"),
    ("per_feature_map channel-first maps", lambda: attribution.per_feature_map(np.ones((2, 16, 4, 4))), r"per_feature_map: attributions of shape \(2, 16, 4, 4\) are read as \(N, H, W, C\).*channel-first \(N, C, H, W\): pass jnp.moveaxis\(attributions, 1, -1\)"),
    ("ev.sparseness one map without its batch axis", lambda: ev.sparseness(np.random.default_rng(0).random((8, 8, 1))), r"attributions of shape \(8, 8, 1\) are read as 8 maps of shape \(8, 1\); one \(H, W, C\) map without its batch axis\? pass attributions\[None\]"),
    ("label_change_rate NaN mutants", lambda: mutation.label_change_rate(_CLF, jax.tree.map(lambda a: a * np.nan, _muts()), _XB), r"label_change_rate: 2 of 2 mutants"),
]


_TRACED_CLASS_CALLS = {
    "cross_entropy": lambda lg, x, t: losses.cross_entropy(lg, t),
    "weighted_cross_entropy": lambda lg, x, t: losses.weighted_cross_entropy(
        lg, t, jnp.eye(10) + 0.1),
    "label smoothing": lambda lg, x, t: losses.make_label_smoothing_loss(0.1)(lg, {"y": t}),
    "make_weighted_loss": lambda lg, x, t: losses.make_weighted_loss(jnp.eye(10) + 0.1)(
        lg, {"y": t}),
    "batched.saliency": lambda lg, x, t: batched_.saliency(_CLF, x, target=t).reshape(
        len(t), -1).sum(1),
    "batched.integrated_gradients": lambda lg, x, t: batched_.integrated_gradients(
        _CLF, x, target=t, n_steps=4).reshape(len(t), -1).sum(1),
    "robustness.fgsm": lambda lg, x, t: robustness.fgsm(_CLF.logits, x, t, 0.1).reshape(
        len(t), -1).sum(1),
    "training.eval_batch (correct)": lambda lg, x, t: training.eval_batch(
        _CLF, x, t, num_classes=10)[1],
    "gradient of cross_entropy": lambda lg, x, t: jax.grad(
        lambda z: losses.cross_entropy(z, t).sum())(lg).sum(1),
}


@pytest.mark.parametrize("name", sorted(_TRACED_CLASS_CALLS))
def test_a_traced_class_index_outside_the_classes_gives_nan(name):
  """Inside jit a label cannot be refused; JAX's lookups then answered for
  another class (x[i] clamps 10 to 9, one_hot gives a zero row,
  take_along_axis a zero gradient): the twenty-first trial's silent cases.
  Every class lookup now gives NaN for such a row, and the other rows keep
  their values."""
  x = np.random.default_rng(0).random((4, 8, 8, 1)).astype(np.float32)
  lg = _CLF.logits(x)
  fn = jax.jit(_TRACED_CLASS_CALLS[name])
  good = np.asarray(fn(lg, x, jnp.array([9, 9, 0, 1])))
  bad = np.asarray(fn(lg, x, jnp.array([10, -1, 0, 1])))
  assert np.isnan(bad[:2]).all(), bad
  np.testing.assert_allclose(bad[2:], good[2:], rtol=1e-5, atol=1e-6)
  assert np.isfinite(good).all()


@pytest.mark.parametrize("name", ["logits", "integrated_gradients", "saliency"])
def test_traced_images_far_off_the_unit_scale_give_nan(name):
  """Inside jit the images' scale cannot be refused: 0..255 floats gave
  large, finite attributions (the twenty-third trial). Rows far off the
  [0, 1] scale now give NaN (through a max-pooling CNN too, which drops a NaN
  input); rows on the scale, noisy ones included, keep their values."""
  fn = {"logits": lambda v: _CLF.logits(v),
        "integrated_gradients": lambda v: batched_.integrated_gradients(
            _CLF, v, target=0, n_steps=4),
        "saliency": lambda v: batched_.saliency(_CLF, v, target=0)}[name]
  x = np.random.default_rng(0).random((4, 8, 8, 1)).astype(np.float32)
  noisy = x + np.random.default_rng(1).normal(0, 0.1, x.shape).astype(np.float32)
  mixed = np.concatenate([x[:2] * 255, noisy[2:]])
  out = np.asarray(jax.jit(fn)(mixed)).reshape(4, -1)
  assert np.isnan(out[:2]).all() and np.isfinite(out[2:]).all()
  np.testing.assert_allclose(out[2:], np.asarray(fn(noisy[2:])).reshape(2, -1), rtol=1e-5,
                             atol=1e-6)


def _resume_without_run_record():
  import tempfile
  work = pathlib.Path(tempfile.mkdtemp()) / "run"
  step = training.make_train_step(losses.cross_entropy_loss, optax.sgd(0.1))
  kwargs = dict(train_step=step, batch_size=674, progress=False, workdir=str(work))
  training.fit(training.create_train_state(K, _CLF, optax.sgd(0.1)), _ds(), epochs=1, **kwargs)
  (work / "run.json").unlink()
  training.fit(training.create_train_state(K, _CLF, optax.sgd(0.1)), _ds(), epochs=2, **kwargs)


WARNED_INPUTS.append(("fit resuming a workdir without run.json", _resume_without_run_record,
                      r"holds checkpoints but no run.json"))


def _resume_without_checkpoints():
  import tempfile
  work = pathlib.Path(tempfile.mkdtemp()) / "run"
  step = training.make_train_step(losses.cross_entropy_loss, optax.sgd(0.1))
  kwargs = dict(train_step=step, batch_size=674, progress=False, workdir=str(work))
  first, _ = training.fit(training.create_train_state(K, _CLF, optax.sgd(0.1)), _ds(),
                          epochs=1, **kwargs)
  shutil.rmtree(work / "checkpoints")
  state, _ = training.fit(training.create_train_state(K, _CLF, optax.sgd(0.1)), _ds(), epochs=2,
                          **kwargs)
  assert int(state.step) == 2 * int(first.step)  # two epochs from step 0


WARNED_INPUTS.append(("fit resuming a workdir whose checkpoints are gone",
                      _resume_without_checkpoints, r"holds a run record \(run.json\) but no "
                      r"checkpoint .*starts again from step 0"))


@pytest.mark.parametrize("call,pattern", [c[1:] for c in WARNED_INPUTS],
                         ids=[c[0] for c in WARNED_INPUTS])
def test_accepted_input_is_warned_not_silent(call, pattern):
  with pytest.warns(UserWarning, match=pattern) as record:
    call()
  # The warning points at the caller's line, not at a line inside the library.
  package = os.path.dirname(os.path.abspath(explicable_jax.__file__))
  for w in record:
    if re.search(pattern, str(w.message)):
      assert not os.path.abspath(w.filename).startswith(package), (w.filename, w.lineno)


def _fit_with_callbacks(callbacks):
  from helpers import small_setup
  _, train, state, step = small_setup(epochs=1)
  return training.fit(state, train, train_step=step, epochs=1, batch_size=64,
                      callbacks=callbacks, progress=False)


def test_split_indices_takes_fractions_like_split_dataset():
  """One sizes rule: fractions summing to 1 give the same parts in both."""
  parts = data.split_indices(10, [0.3, 0.7], seed=0)
  assert [len(p) for p in parts] == [3, 7]
  assert [len(p) for p in data.split_indices(10, (3, 7), seed=0)] == [3, 7]
  assert all((a == b).all() for a, b in zip(parts, data.split_indices(10, (3, 7), seed=0)))


def test_a_resume_on_other_data_of_the_same_size_is_refused(tmp_path):
  """run.json records a digest of the training data's content: the same name,
  size and shape with other examples (here: the labels rolled by one) is not
  the run in the folder."""
  _, train, state, step = _small_setup(epochs=2)
  kw = dict(train_step=step, batch_size=64, progress=False, workdir=str(tmp_path / "w"))
  training.fit(state, train, epochs=1, **kw)
  other = data.Dataset(train.x, np.roll(train.y, 1), train.num_classes, train.class_names,
                       name=train.name)
  with pytest.raises(training.ResumeMismatchError, match=r"data_content: 'sha1:"):
    training.fit(state, other, epochs=2, **kw)
  training.fit(state, train, epochs=2, **kw)  # the same data resumes


def test_fit_warns_when_the_workdir_run_is_longer_than_epochs(tmp_path):
  """A finished 2-epoch run rerun with epochs=1 trains nothing: said so."""
  _, train, state, step = _small_setup(epochs=2)
  kw = dict(train_step=step, batch_size=64, progress=False, workdir=str(tmp_path / "w"))
  done, _ = training.fit(state, train, epochs=2, **kw)
  with pytest.warns(UserWarning, match=r"already trained for 2 epochs .*epochs=1.*nothing was trained"):
    again, _ = training.fit(state, train, epochs=1, **kw)
  assert int(again.step) == int(done.step)


@pytest.mark.parametrize("call,error,pattern", [c[1:] for c in BAD_INPUTS],
                         ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_gets_a_clear_error(call, error, pattern):
  with pytest.raises(error) as info:
    call()
  message = str(info.value)
  assert re.search(pattern, message, re.S), f"message does not name the argument: {message!r}"
  assert len(message) < 600, "one or two sentences, not a dump"


CLI_BAD_INPUTS = [
    # (id, argv, regex the one stderr line must match)
    ("evaluate seed without half", ["evaluate", "{tmp}/m", "--seed", "3"],
     r"--seed 3 sets the paper split's halves, read only with --half"),
    ("train model-kwargs option", ["train", "--dataset", "digits", "--model", "mlp",
                                   "--model-kwargs", '{"hiden": [5]}', "--workdir", "{tmp}/a"],
     r"model 'mlp' does not take the option 'hiden'"),
    ("train model-kwargs JSON", ["train", "--dataset", "digits", "--model", "mlp",
                                 "--model-kwargs", "{hidden: 5}", "--workdir", "{tmp}/b"],
     r"--model-kwargs.*JSON object"),
    ("train weighted without weights", ["train", "--dataset", "digits", "--model", "mlp",
                                        "--loss", "weighted", "--workdir", "{tmp}/c"],
     r"weighted.*weights"),
    ("train dataset", ["train", "--dataset", "digitz", "--model", "mlp", "--workdir", "{tmp}/d"],
     r"dataset.*digits"),
    ("train loss option", ["train", "--dataset", "digits", "--model", "mlp", "--loss",
                           "label_smoothing", "--loss-kwargs", '{"alhpa": 0.1}',
                           "--workdir", "{tmp}/e"], r"alhpa"),
    ("train epochs", ["train", "--dataset", "digits", "--model", "mlp", "--epochs", "0",
                      "--workdir", "{tmp}/f"], r"epochs.*positive"),
    ("evaluate model", ["evaluate", "{tmp}/nothing"], r"model\.json|nothing"),
    ("detect scores", ["detect", "--model", "m", "--dataset", "digits", "--scores", "odin",
                       "--out", "{tmp}/g"], r"--scores.*comma-separated"),
    ("detect model", ["detect", "--model", "{tmp}/nothing", "--dataset", "digits", "--out",
                      "{tmp}/h"], r"model.*model\.json"),
    ("detect no data", ["detect", "--model", "m", "--out", "{tmp}/i"],
     r"--dataset.*--data|one of the arguments"),
    ("train --resume with --no-resume", ["train", "--dataset", "digits", "--model", "mlp",
                                         "--resume", "--no-resume", "--workdir", "{tmp}/j"],
     r"--resume and --no-resume contradict each other"),
]


@pytest.mark.parametrize("argv,pattern", [c[1:] for c in CLI_BAD_INPUTS],
                         ids=[c[0] for c in CLI_BAD_INPUTS])
def test_cli_bad_input_is_one_line_and_exit_status_2(argv, pattern, tmp_path, capsys):
  argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
  try:
    rc = cli.main(argv)
  except SystemExit as e:  # argparse's own errors (usage line + error line)
    rc = e.code
  err = capsys.readouterr().err.strip().splitlines()
  assert rc == 2
  assert err and re.search(pattern, err[-1]), err
  assert not any("Traceback" in line for line in err)
  assert len(err) == 1, err


def test_cli_evaluate_of_a_models_save_folder_asks_for_the_dataset(tmp_path, capsys):
  """A folder written by models.save records no dataset: evaluate says to
  pass --dataset (it was a KeyError traceback), and runs with it."""
  models.save(str(tmp_path / "m"), _CLF)
  assert cli.main(["evaluate", str(tmp_path / "m")]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and re.search(r"does not record its dataset.*pass --dataset NAME", err[0])
  assert cli.main(["evaluate", str(tmp_path / "m"), "--dataset", "digits"]) == 0
  assert '"accuracy"' in capsys.readouterr().out


def test_the_bad_input_table_reaches_every_module():
  """Each public module of the library has rows (a module whose checks were
  all removed would drop out of this set)."""
  modules = set()
  for c in BAD_INPUTS:
    modules |= set(c[1].__code__.co_names)
  for m in ("attribution", "batched_", "data", "deliberative", "detection", "losses",
            "metrics", "models", "mutation", "robustness", "rrr", "similarity", "training",
            "reporting"):
    assert m in modules, m
  assert len(BAD_INPUTS) + len(CLI_BAD_INPUTS) >= 120


# ---------------------------------------------------------------------------
# Non-finite losses, damaged checkpoints, killed runs.


def test_non_finite_loss_leaves_the_state_and_stops_fit(tmp_path):
  def nan_loss(logits, batch, params):
    return losses.cross_entropy(logits, batch["y"]) * jnp.nan

  _, train, state, _ = _small_setup()
  opt = optax.sgd(0.1)
  state = training.create_train_state(jax.random.key(0), state.model(), opt)
  step = training.make_train_step(nan_loss, opt)
  new, m = jax.jit(step)(state, next(data.batches(train, 64)))
  assert not bool(m["finite"])
  chex.assert_trees_all_equal(new.params, state.params)
  with pytest.raises(training.NonFiniteLossError, match="not finite"):
    training.fit(state, train, train_step=step, epochs=1, batch_size=64,
                 workdir=str(tmp_path), progress=False)


def _poisoned(train, step, index):
  """The data set with a ``poison`` flag on example ``index`` and a step that
  turns that example's input into NaN inside the jitted step (a Dataset
  refuses NaN inputs, so the NaN must appear in training, as a diverging
  loss would)."""
  flag = np.zeros(len(train), bool)
  flag[index] = True
  bad = data.Dataset(train.x, train.y, train.num_classes, train.class_names,
                     extras={"poison": flag})

  def poisoned_step(state, batch):
    where = batch["poison"].reshape((-1,) + (1,) * (batch["x"].ndim - 1))
    return step(state, {**batch, "x": jnp.where(where, jnp.nan, batch["x"])})
  return bad, poisoned_step


def test_a_dataset_refuses_nan_inputs():
  _, train, _, _ = _small_setup()
  x = train.x.copy()
  x[5] = np.nan
  with pytest.raises(ValueError, match=r"x holds NaN or inf in 1 example\(s\), indices 5"):
    data.Dataset(x, train.y, train.num_classes, train.class_names)


def test_nan_midway_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
  """Examples of the 4th batch hold a NaN: steps 1-3 are saved (every step),
  step 4 stops the run with a message, and the checkpoint on disk equals an
  uninterrupted 3-step run."""
  _, train, state, step = _small_setup()
  bs = 64
  bad, poisoned_step = _poisoned(train, step, data.epoch_permutation(len(train), 0, 0)[3 * bs])
  with pytest.raises(training.NonFiniteLossError, match=r"step 4.*last good"):
    training.fit(state, bad, train_step=poisoned_step, epochs=1, batch_size=bs, seed=0,
                 workdir=str(tmp_path), checkpoint_every=1, progress=False)
  # The same three updates, by hand, on the clean data.
  good, jstep = state, jax.jit(step)
  clean = data.batches(train, bs, shuffle=True, seed=0, epoch=0, drop_remainder=True)
  for _ in range(3):
    good, _ = jstep(good, next(clean))
  ckpt = training.Checkpointer(tmp_path / "checkpoints")
  assert ckpt.latest_step() == 3
  restored = ckpt.restore(state)
  ckpt.close()
  assert all(bool(jnp.all(jnp.isfinite(v))) for v in jax.tree.leaves(restored.params))
  assert int(good.step) == 3
  chex.assert_trees_all_close(restored.params, good.params, rtol=1e-6, atol=1e-7)
  for a, b in zip(jax.tree.leaves(restored.params), jax.tree.leaves(state.params)):
    assert not np.array_equal(np.asarray(a), np.asarray(b)), "the good steps were lost"


def test_checkpoint_restore_falls_back_when_the_newest_is_damaged(tmp_path):
  _, train, state, step = _small_setup()
  ckpt = training.Checkpointer(tmp_path, max_to_keep=3)
  jstep = jax.jit(step)
  b = next(data.batches(train, 64))
  s1, _ = jstep(state, b)
  ckpt.save(s1)
  s2, _ = jstep(s1, b)
  ckpt.save(s2)
  assert ckpt.all_steps() == [1, 2]
  chex.assert_trees_all_equal(ckpt.restore(state).params, s2.params)
  # Damage every data file of the newest checkpoint.
  for path in pathlib.Path(tmp_path, "2").rglob("*"):
    if path.is_file():
      path.write_bytes(b"garbage")
  with pytest.warns(RuntimeWarning, match=r"step 2.*restored step 1"):
    restored = ckpt.restore(state)
  assert int(restored.step) == 1
  chex.assert_trees_all_equal(restored.params, s1.params)
  ckpt.save(s2)  # the damaged step is written anew
  chex.assert_trees_all_equal(ckpt.restore(state).params, s2.params)
  for path in pathlib.Path(tmp_path).rglob("*"):  # now every checkpoint
    if path.is_file():
      path.write_bytes(b"garbage")
  with pytest.raises(RuntimeError, match=r"could be read, so the run cannot continue from "
                     r"them: restore the folder from a copy, or move it away"):
    ckpt.restore(state)


def test_fit_resumes_past_a_newest_checkpoint_whose_item_folder_is_gone(tmp_path):
  """The nineteenth trial's crash: with the newest checkpoint's item folder
  removed (a save cut short), the fall-back read of the one before failed too
  (orbax then asked for Composite args), so the run could not be resumed."""
  _, train, state, step = _small_setup()
  kw = dict(train_step=step, batch_size=64, checkpoint_every=2, progress=False)
  whole, _ = training.fit(state, train, epochs=3, workdir=str(tmp_path / "whole"), **kw)
  per_epoch = len(train) // 64
  training.fit(state, train, epochs=2, workdir=str(tmp_path / "cut"), **kw)
  newest = training.Checkpointer(tmp_path / "cut" / "checkpoints").latest_step()
  assert newest == 2 * per_epoch
  shutil.rmtree(tmp_path / "cut" / "checkpoints" / str(newest) / "default")
  with pytest.warns(RuntimeWarning, match=f"step {newest}.*could not be read|could not be "
                    f"read.*step {newest}"):
    resumed, _ = training.fit(state, train, epochs=3, workdir=str(tmp_path / "cut"), **kw)
  assert int(resumed.step) == int(whole.step)
  chex.assert_trees_all_close(resumed.params, whole.params, rtol=1e-6, atol=1e-7)


_FIT_SCRIPT = """
import sys, jax, numpy as np
from explicable_jax import data, training
workdir = sys.argv[1]
cfg = training.TrainConfig(dataset="digits", model="mlp", epochs=6, batch_size=32,
                           learning_rate=0.05, model_kwargs={"hidden": [32, 16], "dropout_rate": 0.2},
                           checkpoint_every=37, log_every=1)
train = data.load("digits", "train")
state, step = training.build(cfg, train)
state, _ = training.fit(state, train, train_step=step, epochs=cfg.epochs, batch_size=cfg.batch_size,
                     workdir=workdir, checkpoint_every=cfg.checkpoint_every, log_every=1,
                     progress=False)
flat = np.concatenate([np.ravel(x) for x in jax.tree.leaves(jax.device_get(state.params))])
np.save(workdir + "/final.npy", flat)
print("DONE", int(state.step))
"""


def _last_step(workdir):
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return 0
  steps = []
  for line in open(path).read().splitlines():
    try:
      steps.append(json.loads(line).get("step", 0))
    except json.JSONDecodeError:  # a line being written
      pass
  return max(steps, default=0)


def test_runs_killed_at_random_points_resume_to_the_same_parameters(tmp_path):
  """Two trials; in each the run is SIGKILLed twice, at a random step plus
  a random delay (so kills also land inside checkpoint writes), then run to
  the end. Every trial must end with the uninterrupted run's parameters."""
  env = {**os.environ, "PYTHONPATH": str(ROOT)}
  script = tmp_path / "fit.py"
  script.write_text(_FIT_SCRIPT)
  ref = tmp_path / "ref"
  out = subprocess.run([sys.executable, str(script), str(ref)], env=env,
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  total = int(out.stdout.split("DONE")[1])
  reference = np.load(ref / "final.npy")
  rng = np.random.default_rng(2026)
  for trial in range(2):
    run = tmp_path / f"run{trial}"
    kills = np.sort(rng.integers(1, total - 50, size=2))
    for kill_at in kills:
      proc = subprocess.Popen([sys.executable, str(script), str(run)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
      deadline = time.time() + 300
      while _last_step(run) < kill_at and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
      time.sleep(rng.uniform(0, 0.05))
      proc.send_signal(signal.SIGKILL)
      proc.wait()
      assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (run / "final.npy").exists()
    out = subprocess.run([sys.executable, str(script), str(run)], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    np.testing.assert_array_equal(np.load(run / "final.npy"), reference,
                                  err_msg=f"trial {trial}, kills at {kills}")
    events = []
    for line in open(run / "metrics.jsonl"):
      try:
        events.append(json.loads(line))
      except json.JSONDecodeError:  # the line a kill cut short
        pass
    assert sum(e.get("event") == "resumed" for e in events) >= 1
    # Each training step is logged once, although the kills made the run
    # repeat the steps after its last checkpoint.
    steps = [e["step"] for e in events if "loss" in e]
    assert steps == list(range(1, total + 1)), f"trial {trial}: steps logged twice or lost"


def test_sigint_says_where_the_run_stopped_and_the_rerun_resumes(tmp_path):
  env = {**os.environ, "PYTHONPATH": str(ROOT)}
  cmd = [sys.executable, "-m", "explicable_jax", "train", "--dataset", "digits", "--model",
         "mlp", "--epochs", "40", "--batch-size", "32", "--checkpoint-every", "20",
         "--log-every", "1", "--no-progress", "--workdir", str(tmp_path / "w")]
  proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
  deadline = time.time() + 300
  while _last_step(tmp_path / "w") < 60 and proc.poll() is None and time.time() < deadline:
    time.sleep(0.02)
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 130, err[-2000:]
  last = err.strip().splitlines()[-1]
  m = re.fullmatch(r"explicable-jax train: interrupted at step (\d+); the last checkpoint is "
                   r"step (\d+); rerun the same command to resume", last)
  assert m, last
  assert int(m.group(1)) == int(m.group(2)) >= 60  # saved on the way out
  assert "Traceback" not in err
  fewer = cmd[:cmd.index("--epochs") + 1] + ["1"] + cmd[cmd.index("--epochs") + 2:]
  # Fewer epochs change the schedule's total steps: the run record refuses it...
  refused = subprocess.run(fewer, env=env, capture_output=True, text=True, timeout=300)
  assert refused.returncode == 2 and "--allow-changes" in refused.stderr, refused.stderr[-2000:]
  subprocess.run(fewer + ["--allow-changes"], env=env, capture_output=True, text=True,
                 timeout=300)
  # ...and the rerun that allows it (fewer epochs, so it ends at once) starts from the
  # checkpoint.
  events = [json.loads(l) for l in open(tmp_path / "w" / "metrics.jsonl")]
  assert any(e.get("event") == "resumed" and e["step"] == int(m.group(2)) for e in events)


# ---------------------------------------------------------------------------
# Determinism.


def test_the_first_ctrl_c_stops_at_a_step_boundary_and_saves(tmp_path):
  """The first SIGINT only asks the loop to stop: the code running when it
  arrives (here a callback; in a real run often an asynchronous checkpoint
  save or a garbage-collector hook, where a raised KeyboardInterrupt is lost or
  breaks the save) finishes, the step's checkpoint is written, and ``fit``
  raises ``TrainingInterrupted`` naming that step. The handler is removed
  afterwards."""
  finished = []

  class CtrlC(training.Callback):
    def on_log(self, record):
      if record["step"] == 3:
        os.kill(os.getpid(), signal.SIGINT)
        finished.append(record["step"])  # not reached if the signal raised here

  _, train, state, _ = _small_setup()
  opt = optax.sgd(0.1)
  state = training.create_train_state(jax.random.key(0), state.model(), opt)
  before = signal.getsignal(signal.SIGINT)
  with pytest.raises(training.TrainingInterrupted, match="interrupted at step 3; the last "
                     "checkpoint is step 3") as e:
    training.fit(state, train, train_step=training.make_train_step(
        lambda logits, batch, params: losses.cross_entropy(logits, batch["y"]), opt), epochs=5, batch_size=64, workdir=str(tmp_path),
                 checkpoint_every=100, log_every=1, progress=False, callbacks=[CtrlC()])
  assert finished == [3]
  assert (e.value.step, e.value.checkpoint_step) == (3, 3)
  assert signal.getsignal(signal.SIGINT) is before


def _params_after_fit(seed):
  cfg, train, _, _ = _small_setup(model_kwargs={"hidden": [16], "dropout_rate": 0.3},
                                  seed=seed)
  state, step = training.build(cfg, train)
  state, _ = training.fit(state, train, train_step=step, epochs=2, batch_size=64, seed=seed,
                       progress=False)
  return [np.asarray(a) for a in jax.tree.leaves(jax.device_get(state.params))]


def test_the_same_seed_gives_bit_identical_results_on_cpu():
  a, b, c = _params_after_fit(0), _params_after_fit(0), _params_after_fit(1)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  assert any(not np.array_equal(x, z) for x, z in zip(a, c)), "the seed is ignored"
  m1 = mutation.mutate_many(jax.random.key(3), _P, 4, "GF", 0.3)
  m2 = mutation.mutate_many(jax.random.key(3), _P, 4, "GF", 0.3)
  chex.assert_trees_all_equal(m1, m2)
  lcr = lambda m: mutation.label_change_rate(  # noqa: E731
      lambda p, x: models.apply_model(_G, p, _S, x)[0], m, _digits().x[:64], params=_P)
  np.testing.assert_array_equal(lcr(m1), lcr(m2))


# ---------------------------------------------------------------------------
# Property tests.

# A few shapes only: each new shape compiles every op again, and the values
# (not the shapes) are what the properties are about.
_logits = st.tuples(st.sampled_from([1, 5]), st.sampled_from([2, 3, 6])).flatmap(
    lambda nc: st.tuples(st.lists(st.lists(st.floats(-20, 20), min_size=nc[1], max_size=nc[1]),
                                  min_size=nc[0], max_size=nc[0]),
                         st.integers(0, 10 ** 6)))


@settings(max_examples=40, deadline=None)
@given(_logits, st.floats(-50, 50))
def test_weighted_cross_entropy_properties(logits_seed, shift):
  logits, seed = logits_seed
  logits = np.asarray(logits, np.float32)
  n, c = logits.shape
  rng = np.random.default_rng(seed)
  y = rng.integers(0, c, n)
  w = rng.random((c, c)).astype(np.float32) + np.eye(c, dtype=np.float32)
  wce = losses.weighted_cross_entropy(logits, y, w)
  # Softmax is shift invariant, so is the loss; it is non-negative (targets
  # are a distribution) and at least the entropy of the target row.
  np.testing.assert_allclose(losses.weighted_cross_entropy(logits + shift, y, w), wce,
                             rtol=1e-4, atol=1e-3)
  t = np.asarray(losses.weighted_targets(w))[y]
  entropy = -(t * np.log(t)).sum(-1)
  assert np.all(np.asarray(wce) >= entropy - 1e-4)
  # The identity matrix gives plain cross-entropy (optax's).
  np.testing.assert_allclose(losses.weighted_cross_entropy(logits, y, np.eye(c)),
                             optax.softmax_cross_entropy_with_integer_labels(logits, y),
                             rtol=1e-5, atol=1e-5)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10 ** 6), st.floats(0.0, 100.0))
def test_input_gradient_penalty_properties(seed, lam):
  x = jax.random.normal(jax.random.key(seed), (3, 8, 8, 1))
  ann = jax.random.bernoulli(jax.random.key(seed + 1), 0.3, x.shape)
  pen = losses.input_gradient_penalty(_LOGITS_FN, x, ann)
  assert pen.shape == (3,) and bool(jnp.all(pen >= 0))
  np.testing.assert_array_equal(losses.input_gradient_penalty(_LOGITS_FN, x, jnp.zeros_like(ann)),
                                np.zeros(3))
  # The penalty is additive over disjoint annotations (a sum of squares).
  both = losses.input_gradient_penalty(_LOGITS_FN, x, jnp.ones_like(ann))
  parts = pen + losses.input_gradient_penalty(_LOGITS_FN, x, ~ann)
  np.testing.assert_allclose(both, parts, rtol=1e-4, atol=1e-7)
  # RRR loss = CE + lam * penalty, example by example.
  loss = losses.make_rrr_loss(lam)
  batch = {"x": x, "y": jnp.zeros(3, jnp.int32), "annotation": ann}
  got, aux = loss(_LOGITS_FN(x), batch, _P, model_fn=_LOGITS_FN)
  if lam:
    np.testing.assert_allclose(aux["gradient_penalty"], pen.mean(), rtol=1e-5)
  else:  # lam = 0 skips the double backward pass (and reports no penalty)
    assert "gradient_penalty" not in aux
  want = losses.cross_entropy(_LOGITS_FN(x), batch["y"]) + lam * pen
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(-1000, 1000), min_size=2, max_size=40), st.integers(0, 10 ** 6))
def test_auroc_properties(scores, seed):
  from sklearn.metrics import roc_auc_score
  scores = np.asarray(scores, np.float64)
  pos = np.random.default_rng(seed).random(len(scores)) < 0.5
  if pos.all() or not pos.any():
    pos[0] = not pos[0]
  a = metrics.auroc(scores, pos)
  assert 0 <= a <= 1
  np.testing.assert_allclose(a, roc_auc_score(pos, scores), atol=1e-9)
  np.testing.assert_allclose(a + metrics.auroc(-scores, pos), 1.0, atol=1e-9)
  np.testing.assert_allclose(metrics.auroc(np.arctan(scores / 100), pos),
                             metrics.auroc(np.arctan(scores / 100) * 3 + 1, pos), atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10 ** 6), st.integers(2, 9))
def test_confusion_matrix_properties(seed, c):
  rng = np.random.default_rng(seed)
  y, p = rng.integers(0, c, 50), rng.integers(0, c, 50)
  cm = np.asarray(metrics.confusion_matrix(y, p, c))
  assert cm.sum() == 50 and np.trace(cm) == np.sum(y == p)
  np.testing.assert_array_equal(cm.sum(1), np.bincount(y, minlength=c))


_MUT_PARAMS = {"conv": {"kernel": jax.random.normal(jax.random.key(0), (3, 3, 2, 12)),
                        "bias": jax.random.normal(jax.random.key(1), (12,))},
               "dense": {"kernel": jax.random.normal(jax.random.key(2), (12, 4))}}


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2 ** 31 - 1), st.floats(0.17, 1.0))
def test_mutation_operator_properties(seed, rate):
  key = jax.random.key(seed)
  k0 = np.asarray(_MUT_PARAMS["conv"]["kernel"])
  n_filters = k0.shape[-1]
  chosen = int(np.floor(rate * n_filters))
  # NAI negates exactly floor(rate * filters) filters (and their bias), nothing else.
  nai = mutation.neuron_activation_inverse(key, _MUT_PARAMS, rate)
  k1 = np.asarray(nai["conv"]["kernel"])
  flipped = np.all(k1 == -k0, axis=(0, 1, 2))
  assert flipped.sum() == chosen
  np.testing.assert_array_equal(k1[..., ~flipped], k0[..., ~flipped])
  np.testing.assert_array_equal(nai["dense"]["kernel"], _MUT_PARAMS["dense"]["kernel"])
  # WS keeps every filter's multiset of weights.
  ws = mutation.weight_shuffling(key, _MUT_PARAMS, rate)
  kw = np.asarray(ws["conv"]["kernel"]).reshape(-1, n_filters)
  np.testing.assert_array_equal(np.sort(kw, 0), np.sort(k0.reshape(-1, n_filters), 0))
  # NS keeps the layer's set of filters.
  ns = mutation.neuron_switch(key, _MUT_PARAMS, rate)
  kn = np.asarray(ns["conv"]["kernel"]).reshape(-1, n_filters)
  key_of = lambda m: sorted(map(tuple, m.T.round(6)))  # noqa: E731
  assert key_of(kn) == key_of(k0.reshape(-1, n_filters))
  # GF (weights) changes exactly floor(rate * weights) conv weights.
  gf = mutation.gaussian_fuzzing(key, _MUT_PARAMS, rate)
  assert int(np.sum(np.asarray(gf["conv"]["kernel"]) != k0)) == int(np.floor(rate * k0.size))


def test_inputs_that_used_to_pass_silently_now_raise():
  """Issue 17's silent cases, each of which returned a wrong value before."""
  from explicable_jax.attribution import batched  # noqa: F401
  f = lambda x: x.reshape(len(x), -1) @ jnp.ones((x[0].size, 10))
  # A class index past the last class (JAX would clamp it to class 9).
  with pytest.raises(ValueError, match=r"target must lie in \[0, 10\)"):
    attribution.gradient(attribution.class_score_fn(f, 12), jnp.ones((4, 4, 3)))
  # Attack labels outside [0, classes).
  with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
    robustness.fgsm(f, jnp.zeros((2, 4, 4, 3)), jnp.array([0, 10]), 0.1)
  with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
    robustness.pgd(jax.random.key(0), f, jnp.zeros((2, 4, 4, 3)), jnp.array([1, 10]), 0.1)
  with pytest.raises(ValueError, match=r"labels must be non-negative"):
    robustness.pgd(jax.random.key(0), f, jnp.zeros((2, 4, 4, 3)), jnp.array([-1, 0]), 0.1)
  # A Dataset whose x and y differ in length.
  with pytest.raises(ValueError, match=r"3 inputs and 2 labels|one label per example \(3\); got 2"):
    data.Dataset(np.zeros((3, 2)), np.zeros(2, int), 2, ("a", "b"))
  # A 1-column input to a 5-feature detector broadcast after standardising.
  det = detection.Detector(params=detection.init_mlp(jax.random.key(0), [5, 4, 1]),
                           mean=np.zeros(5), std=np.ones(5), history=[])
  with pytest.raises(ValueError, match="5 columns as in training; got 1"):
    det.scores(np.zeros((3, 1)))
  # A string or a mapping where class names are expected.
  with pytest.raises(TypeError, match="got the string 'cat'"):
    similarity.wordnet_similarity("cat")
  with pytest.raises(TypeError, match=r"mapping.values\(\)"):
    similarity.wordnet_similarity(similarity.CIFAR10_SYNSETS)
  # make_mutants with max_draws < n used to raise a TypeError without a gate
  # (and to draw n anyway with one); it can never be met, so it is refused.
  p = {"dense": {"kernel": jnp.ones((3, 2)), "bias": jnp.zeros(2)}}
  with pytest.raises(ValueError, match="max_draws must be at least n=3"):
    mutation.make_mutants(jax.random.key(0), p, 3, "GF", 0.5, layers="kernels", max_draws=1,
                          batch=1)
  # An unknown deliberative method fell through to gradient-Hessian.
  feats = lambda x: x
  head = lambda h: h.mean(axis=(1, 2))
  with pytest.raises(ValueError, match="method must be one of"):
    deliberative.attribution_maps(feats, head, jnp.ones((1, 4, 4, 3)), top_k=2, method="hessian")


def test_a_hardness_models_extra_output_never_counts_in_accuracy():
  """A model with C + 1 outputs (class logits, then the hardness logit) whose
  hardness logit is the largest output: accuracy must read the C class
  logits only, in evaluate and in the training step's metrics."""
  c = 3

  def apply(p, x):
    logits = jnp.eye(c)[x[:, 0].astype(jnp.int32)] * p["s"]
    return jnp.concatenate([logits, jnp.full((len(x), 1), 100.0)], 1)

  clf = models.from_functions(apply, {"s": jnp.float32(5.0)}, num_classes=c + 1)
  y = np.array([0, 1, 2, 1, 0, 2], np.int32)
  ds = data.Dataset(y[:, None].astype(np.float32), y, c, ("a", "b", "c"), name="toy")
  loss = deliberative.make_hardness_loss(c)
  assert training.evaluate(clf, ds, loss_fn=loss)["accuracy"] == 1.0
  step = training.make_train_step(loss, optax.sgd(0.0))
  state = training.create_train_state(jax.random.key(0), clf, optax.sgd(0.0))
  _, m = step(state, {"x": ds.x, "y": ds.y})
  assert float(m["accuracy"]) == 1.0
  # Without a loss that says which outputs are classes, fit refuses.
  with pytest.raises(ValueError, match="returns 4 scores for the 3 classes"):
    training.fit(state, ds, train_step=training.make_train_step(
        losses.cross_entropy_loss, optax.sgd(0.0)), epochs=1, batch_size=2, progress=False)


def test_a_batch_given_to_a_one_example_method_says_so():
  score = attribution.class_score_fn(_CLF.logits, 0)
  with pytest.raises(ValueError, match=r"one example of shape \(8, 8, 1\).*batched"):
    attribution.integrated_gradients(score, jnp.zeros((5, 8, 8, 1)))


def test_the_nan_guard_needs_no_host_sync_per_step_and_names_the_first_bad_step(tmp_path,
                                                                               monkeypatch):
  """The 4th batch holds a NaN; the host looks only at the checkpoint steps
  (every 3), so it finds out at step 6, yet it names step 4, and the
  checkpoint of step 3 is the newest: steps 5 and 6 changed nothing."""
  from explicable_jax.training import loop
  _, train, state, step = _small_setup()
  bs = 64
  bad, poisoned_step = _poisoned(train, step, data.epoch_permutation(len(train), 0, 0)[3 * bs])
  with pytest.raises(training.NonFiniteLossError, match=r"not finite at step 4.*step 3"):
    training.fit(state, bad, train_step=poisoned_step, epochs=1, batch_size=bs, seed=0,
                 workdir=str(tmp_path), checkpoint_every=3, log_every=1000, progress=False)
  ckpt = training.Checkpointer(tmp_path / "checkpoints")
  assert ckpt.latest_step() == 3
  ckpt.close()
  # Host reads: a fixed few per epoch, however many steps it has.
  calls = []
  real = loop.jax.device_get
  monkeypatch.setattr(loop.jax, "device_get", lambda x: calls.append(1) or real(x))
  counts = []
  for n in (256, 1024):
    calls.clear()
    training.fit(state, train.take(np.arange(n)), train_step=step, epochs=1, batch_size=32,
                 log_every=10_000, progress=False)
    counts.append(len(calls))
  # 8 steps and 32 steps: the same 5 reads (the start step, the final log's
  # guard and metrics, the epoch-end guard, the end step).
  assert counts[0] == counts[1] == 5, counts


def test_an_integer_pixel_baseline_is_converted_like_the_images():
  """A uint8 baseline of 255 is the all-ones [0, 1] baseline: the same
  attribution (it used to be read as 255.0, off the images' scale)."""
  x = _XB + 0.5
  as_pixels = batched_.integrated_gradients(_CLF, x, target=0,
                                            baselines=np.full(_XB.shape, 255, np.uint8))
  as_floats = batched_.integrated_gradients(_CLF, x, target=0,
                                            baselines=np.ones(_XB.shape, np.float32))
  np.testing.assert_allclose(np.asarray(as_pixels), np.asarray(as_floats), atol=1e-6)
  assert float(np.abs(np.asarray(as_floats)).sum()) > 0  # a non-trivial attribution


def test_markdown_table_keeps_a_cell_with_a_bar_in_one_cell():
  """A ``|`` in a cell (``p(y|x)``) is escaped, one already escaped is kept,
  and a line break becomes ``<br>``: the rendered table keeps its columns."""
  table = reporting.markdown_table(["a", "b|c"], [["p(y|x)", "q(y\\|x)"], ["l1\nl2", 3]])
  assert table.splitlines() == ["| a | b\\|c |", "|---|---|", "| p(y\\|x) | q(y\\|x) |",
                                "| l1<br>l2 | 3 |"]
  for line in table.splitlines():  # every row has the header's two cells
    assert len(re.split(r"(?<!\\)\|", line)) == 4, line


def test_ssim_of_two_equal_constant_maps_is_one():
  """The thirty-second trial: with data_range=None the pair's range is 0 and
  SSIM was 0/0 = NaN; identical maps score 1 (the docstring's promise)."""
  z = jnp.zeros((2, 8, 8))
  np.testing.assert_array_equal(np.asarray(ev.ssim(z, z)), [1.0, 1.0])
  np.testing.assert_allclose(np.asarray(ev.ssim(z + 3.0, z + 3.0)), [1.0, 1.0])
  assert float(ev.ssim(z[:1], z[:1] + 1.0)[0]) < 1e-3  # two different constants: dissimilar
