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
from explicable_jax import (attribution, data, deliberative, detection, losses, metrics, models,
                            mutation, robustness, rrr, similarity, training)
from explicable_jax.app import reporting

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
     r"is_positive.*shape"),
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
     r"original_predictions.*\(4,\)"),
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
     r"x.*rank 4"),
    ("difficulty_score name", lambda: deliberative.difficulty_score("doubt"), ValueError,
     r"difficulty.*entropy"),
    ("top_fraction_mask r", lambda: deliberative.top_fraction_mask(jnp.zeros((2, 4, 4)), 0.0),
     ValueError, r"\br\b.*\(0, 1\)"),
    # reporting
    ("markdown_table rows", lambda: reporting.markdown_table(["a", "b"], [[1, 2, 3]]),
     ValueError, r"rows?.*columns?|header"),
]


@pytest.mark.parametrize("call,error,pattern", [c[1:] for c in BAD_INPUTS],
                         ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_gets_a_clear_error(call, error, pattern):
  with pytest.raises(error) as info:
    call()
  message = str(info.value)
  assert re.search(pattern, message, re.S), f"message does not name the argument: {message!r}"
  assert len(message) < 600, "one or two sentences, not a dump"


def test_the_bad_input_table_covers_the_public_api():
  assert len(BAD_INPUTS) >= 30
  modules = {c[0].split()[0].split(".")[0] for c in BAD_INPUTS}
  assert len(modules) >= 12, modules


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


def test_nan_midway_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
  """Examples of the 4th batch hold a NaN: steps 1-3 are saved (every step),
  step 4 stops the run with a message, and the checkpoint on disk equals an
  uninterrupted 3-step run."""
  _, train, state, step = _small_setup()
  bs = 64
  poisoned = train.x.copy()
  perm = data.epoch_permutation(len(train), 0, 0)
  poisoned[perm[3 * bs]] = np.nan
  bad = data.Dataset(poisoned, train.y, train.num_classes, train.class_names)
  with pytest.raises(training.NonFiniteLossError, match=r"step 4.*last good"):
    training.fit(state, bad, train_step=step, epochs=1, batch_size=bs, seed=0,
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
  restored = ckpt.restore(state)
  assert int(restored.step) == 1
  chex.assert_trees_all_equal(restored.params, s1.params)


_FIT_SCRIPT = """
import sys, jax, numpy as np
from explicable_jax import data, training
workdir = sys.argv[1]
cfg = training.TrainConfig(dataset="digits", model="mlp", epochs=6, batch_size=32,
                           learning_rate=0.05, model_kwargs={"hidden": [32, 16], "dropout_rate": 0.2},
                           checkpoint_every=37, log_every=1)
train = data.load("digits", "train")
state, step = training.build(cfg, train)
state = training.fit(state, train, train_step=step, epochs=cfg.epochs, batch_size=cfg.batch_size,
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
  """Three trials; in each the run is SIGKILLed twice, at a random step plus
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
  for trial in range(3):
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


# ---------------------------------------------------------------------------
# Determinism.


def _params_after_fit(seed):
  cfg, train, _, _ = _small_setup(model_kwargs={"hidden": [16], "dropout_rate": 0.3},
                                  seed=seed)
  state, step = training.build(cfg, train)
  state = training.fit(state, train, train_step=step, epochs=2, batch_size=64, seed=seed,
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
  np.testing.assert_allclose(aux["gradient_penalty"], pen.mean(), rtol=1e-5)
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
    robustness.pgd(jax.random.key(0), f, jnp.zeros((2, 4, 4, 3)), jnp.array([-1, 0]), 0.1)
  # A Dataset whose x and y differ in length.
  with pytest.raises(ValueError, match="3 inputs and 2 labels"):
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
  # make_mutants without a gate and max_draws < n used to raise a TypeError.
  p = {"dense": {"kernel": jnp.ones((3, 2)), "bias": jnp.zeros(2)}}
  with pytest.raises(mutation.GateRejectedError, match="within max_draws=1"):
    mutation.make_mutants(jax.random.key(0), p, 3, "GF", 0.5, layers="kernels", max_draws=1,
                          batch=1)
  # An unknown deliberative method fell through to gradient-Hessian.
  feats = lambda x: x
  head = lambda h: h.mean(axis=(1, 2))
  with pytest.raises(ValueError, match="method must be one of"):
    deliberative.attribution_maps(feats, head, jnp.ones((1, 4, 4, 3)), top_k=2, method="hessian")
