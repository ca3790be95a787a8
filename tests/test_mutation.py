"""Mutation operators change exactly what they say; LCR and SPRT against loops."""
import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from explicable_jax import models, mutation
from explicable_jax.mutation import _common, _prefix, ensembles, predictions


def _params(seed=0):
  k = jax.random.split(jax.random.key(seed), 6)
  return {
      "conv1": {"kernel": jax.random.normal(k[0], (3, 3, 4, 12)),
                "bias": jax.random.normal(k[1], (12,))},
      "conv2": {"kernel": jax.random.normal(k[2], (3, 3, 12, 16))},
      "bn": {"scale": jax.random.normal(k[3], (16,)), "bias": jax.random.normal(k[4], (16,))},
      "dense": {"kernel": jax.random.normal(k[5], (16, 10)), "bias": jnp.zeros(10)},
  }


def _changed_neurons(a, b):
  return int(jnp.sum(jnp.any(a != b, axis=tuple(range(a.ndim - 1)))))


def _unchanged(tree_a, tree_b, keys):
  for k1, k2 in keys:
    np.testing.assert_array_equal(tree_a[k1][k2], tree_b[k1][k2])


CONV_WEIGHTS = 3 * 3 * 4 * 12 + 3 * 3 * 12 * 16
CONV_NEURONS = 12 + 16


@pytest.mark.parametrize("mode", ["replace", "additive"])
def test_gaussian_fuzzing_weights_changes_exactly_the_fraction(mode):
  p = _params()
  rate = 0.1
  m = mutation.gaussian_fuzzing(jax.random.key(1), p, rate, mode=mode)
  changed = int(jnp.sum(m["conv1"]["kernel"] != p["conv1"]["kernel"])
                + jnp.sum(m["conv2"]["kernel"] != p["conv2"]["kernel"]))
  assert changed == math.floor(rate * CONV_WEIGHTS)
  _unchanged(m, p, [("conv1", "bias"), ("bn", "scale"), ("bn", "bias"),
                    ("dense", "kernel"), ("dense", "bias")])


def test_gaussian_fuzzing_replace_draws_from_the_tensor_statistics():
  w = jax.random.normal(jax.random.key(0), (3, 3, 64, 64)) * 0.3 + 0.7
  m = mutation.gaussian_fuzzing(jax.random.key(2), {"c": {"kernel": w}}, 1.0)["c"]["kernel"]
  assert abs(float(m.mean()) - float(w.mean())) < 0.01
  assert abs(float(m.std()) - float(w.std())) < 0.01
  assert float(jnp.mean(m == w)) == 0.0


def test_gaussian_fuzzing_additive_noise_has_sigma():
  w = jnp.zeros((3, 3, 64, 64)).at[0].set(1.0)
  m = mutation.gaussian_fuzzing(jax.random.key(3), {"c": {"kernel": w}}, 1.0,
                                mode="additive", sigma=0.05)["c"]["kernel"]
  assert abs(float((m - w).std()) - 0.05) < 0.002


def test_gaussian_fuzzing_neurons_follows_wu_et_al():
  p = _params(1)
  m = mutation.gaussian_fuzzing(jax.random.key(4), p, 0.25, granularity="neuron")
  n = (_changed_neurons(m["conv1"]["kernel"], p["conv1"]["kernel"])
       + _changed_neurons(m["conv2"]["kernel"], p["conv2"]["kernel"]))
  assert n == math.floor(0.25 * CONV_NEURONS)
  _unchanged(m, p, [("conv1", "bias"), ("dense", "kernel")])


def test_nai_negates_exactly_the_chosen_filters_and_their_bias():
  p = _params(2)
  m = mutation.neuron_activation_inverse(jax.random.key(5), p, 0.3)
  total = 0
  for name in ("conv1", "conv2"):
    w, v = p[name]["kernel"], m[name]["kernel"]
    neg = np.asarray(jnp.all(v == -w, axis=(0, 1, 2)))
    same = np.asarray(jnp.all(v == w, axis=(0, 1, 2)))
    assert np.all(neg ^ same)
    total += int(neg.sum())
    if name == "conv1":
      np.testing.assert_array_equal(m[name]["bias"], jnp.where(neg, -p[name]["bias"],
                                                              p[name]["bias"]))
  assert total == math.floor(0.3 * CONV_NEURONS)
  _unchanged(m, p, [("bn", "scale"), ("bn", "bias"), ("dense", "kernel")])


def test_nai_on_all_kernels_includes_dense_layers():
  p = _params(3)
  m = mutation.neuron_activation_inverse(jax.random.key(6), p, 1.0, layers="kernels")
  np.testing.assert_array_equal(m["dense"]["kernel"], -p["dense"]["kernel"])
  np.testing.assert_array_equal(m["conv1"]["bias"], -p["conv1"]["bias"])


def test_weight_shuffling_permutes_every_weight_of_the_chosen_neurons():
  p = _params(4)
  m = mutation.weight_shuffling(jax.random.key(7), p, 0.5)
  changed = 0
  for name in ("conv1", "conv2"):
    w = p[name]["kernel"].reshape(-1, p[name]["kernel"].shape[-1])
    v = m[name]["kernel"].reshape(w.shape)
    for j in range(w.shape[1]):
      if bool(jnp.any(v[:, j] != w[:, j])):
        changed += 1
        np.testing.assert_array_equal(jnp.sort(v[:, j]), jnp.sort(w[:, j]))
        assert bool(jnp.all(v[:, j] != w[:, j]))  # a derangement: every weight moved
  assert changed == math.floor(0.5 * CONV_NEURONS)
  _unchanged(m, p, [("conv1", "bias"), ("dense", "kernel")])


def test_neuron_switch_trades_neurons_within_each_layer():
  p = _params(5)
  m = mutation.neuron_switch(jax.random.key(8), p, 0.25)
  for name in ("conv1", "conv2"):
    w, v = p[name]["kernel"], m[name]["kernel"]
    width = w.shape[-1]
    assert _changed_neurons(v, w) == max(2, math.floor(0.25 * width))
    cols_w = {np.asarray(w[..., j]).tobytes() for j in range(width)}
    cols_v = {np.asarray(v[..., j]).tobytes() for j in range(width)}
    assert cols_w == cols_v  # the same filters, switched
  # The bias travels with its filter.
  w, v = p["conv1"]["kernel"], m["conv1"]["kernel"]
  for j in range(12):
    src = [i for i in range(12) if bool(jnp.all(w[..., i] == v[..., j]))][0]
    assert m["conv1"]["bias"][j] == p["conv1"]["bias"][src]


def test_operators_on_a_real_nnx_model_touch_only_conv_kernels():
  model = models.create_model(jax.random.key(0), "resnet20", input_shape=(32, 32, 3),
                              num_classes=10)
  _, params, _ = models.split_model(model)
  paths = mutation.eligible_paths(params, layers="conv")
  assert paths and all(p.endswith("kernel") and "conv" in p for p in paths)
  m = mutation.neuron_activation_inverse(jax.random.key(1), params, 0.05)
  flat_p = jax.tree_util.tree_flatten_with_path(params)[0]
  flat_m = jax.tree.leaves(m)
  negated, filters = 0, 0
  for (path, a), b in zip(flat_p, flat_m):
    a, b = np.asarray(a), np.asarray(b)
    if "kernel" not in jax.tree_util.keystr(path) or a.ndim != 4:
      np.testing.assert_array_equal(a, b)
    else:
      negated += int(np.sum(np.all(b == -a, axis=(0, 1, 2)) & np.any(a != 0, axis=(0, 1, 2))))
      filters += a.shape[-1]
  assert negated == math.floor(0.05 * filters)


def test_mutate_many_is_the_operator_vmapped_over_split_keys():
  p = _params(6)
  key = jax.random.key(9)
  stacked = mutation.mutate_many(key, p, 4, "NAI", 0.2)
  keys = jax.random.split(key, 4)
  for i in range(4):
    one = mutation.neuron_activation_inverse(keys[i], p, 0.2)
    np.testing.assert_array_equal(stacked["conv2"]["kernel"][i], one["conv2"]["kernel"])
  assert _common.check_mutants(stacked, p) == 4


def _linear(params, x):
  return x @ params["dense"]["kernel"] + params["dense"]["bias"]


def test_label_change_rate_matches_a_loop_over_mutants():
  p = {"dense": {"kernel": jax.random.normal(jax.random.key(0), (8, 5)),
                 "bias": jnp.zeros(5)}}
  x = np.asarray(jax.random.normal(jax.random.key(1), (37, 8)))
  muts = mutation.mutate_many(jax.random.key(2), p, 7, "GF", 0.3, layers="kernels")
  lcr = mutation.label_change_rate(_linear, muts, x, params=p, mutant_chunk=3, batch_size=10)
  orig = np.argmax(_linear(p, x), -1)
  want = np.zeros(len(x))
  for i in range(7):
    mi = jax.tree.map(lambda a: a[i], muts)
    want += np.asarray(np.argmax(_linear(mi, x), -1) != orig)
  np.testing.assert_allclose(lcr, want / 7)
  # A mutant equal to the model changes nothing.
  same = jax.tree.map(lambda a: a[None], p)
  np.testing.assert_array_equal(mutation.label_change_rate(_linear, same, x, params=p), 0.0)


def test_make_mutants_gate_keeps_only_accurate_mutants_and_draws_more():
  p = {"dense": {"kernel": jnp.ones((4, 3)), "bias": jnp.zeros(3)}}
  calls = []

  def accuracy_fn(stacked):
    # 1.0 unless neuron 0 was negated (then 0.0): NAI with one of 3 neurons
    # fails the gate about a third of the time.
    acc = np.asarray(jnp.mean(stacked["dense"]["kernel"][:, :, 0] > 0, axis=1))
    calls.append(len(acc))
    return acc

  muts, info = mutation.make_mutants(jax.random.key(0), p, 5, "NAI", 0.34, layers="kernels",
                                     accuracy_fn=accuracy_fn, min_relative_accuracy=0.5,
                                     batch=3)
  assert _common.check_mutants(muts, p) == 5
  assert bool(jnp.all(muts["dense"]["kernel"][:, :, 0] > 0))  # no failing mutant kept
  assert np.all(info["accuracies"] == 1.0) and info["original_accuracy"] == 1.0
  assert info["drawn"] > info["accepted"] >= 5  # some were rejected, more were drawn
  assert calls[0] == 1 and set(calls[1:]) == {3}  # the original, then batches of 3
  with pytest.raises(mutation.GateRejectedError, match="too high") as failed:
    mutation.make_mutants(jax.random.key(0), p, 2, "NAI", 1.0, layers="kernels",
                          accuracy_fn=accuracy_fn, max_draws=6)
  assert isinstance(failed.value, ValueError)
  assert (failed.value.drawn, failed.value.accepted) == (6, 0)


def test_mutate_many_compiles_once_for_every_draw_of_the_same_kind():
  p = _params(6)
  ensembles._vmapped_operator.cache_clear()
  first = mutation.mutate_many(jax.random.key(0), p, 3, "GF", 0.2, granularity="neuron")
  fn = ensembles._vmapped_operator(mutation.gaussian_fuzzing, 0.2, (("granularity", "neuron"),))
  compiled = fn._cache_size()
  second = mutation.mutate_many(jax.random.key(1), p, 3, "GF", 0.2, granularity="neuron")
  assert fn._cache_size() == compiled == 1  # the second draw reused the first's program
  assert not np.array_equal(first["conv2"]["kernel"], second["conv2"]["kernel"])
  # New parameter values (not shapes) do not recompile either: they are an argument.
  mutation.mutate_many(jax.random.key(1), jax.tree.map(lambda a: a + 1, p), 3, "GF", 0.2,
                       granularity="neuron")
  assert fn._cache_size() == 1


def _wang_detect(changes, threshold, sigma, alpha, beta):
  """Wang et al.'s Detector.detect, one input at a time."""
  accept = np.log((1 - beta) / alpha)
  deny = np.log(beta / (1 - alpha))
  p1, p0 = threshold + sigma, threshold - sigma
  c = 0
  for n, changed in enumerate(changes, 1):
    if changed:
      c += 1
      pr = c * np.log(p1 / p0) + (n - c) * np.log((1 - p1) / (1 - p0))
      if pr >= accept:
        return True, n
      if pr <= deny:
        return False, n
  return False, len(changes)


def test_sprt_matches_wang_et_al_loop():
  rng = np.random.default_rng(0)
  rates = rng.uniform(0, 0.4, 200)
  changes = rng.random((100, 200)) < rates[None, :]
  got = mutation.sprt_detect(changes, 0.1, indifference=0.05, alpha=0.05, beta=0.05)
  for i in range(200):
    sus, used = _wang_detect(changes[:, i], 0.1, 0.05, 0.05, 0.05)
    assert got["suspicious"][i] == sus and got["mutants_used"][i] == used, i
  assert got["suspicious"][rates > 0.3].mean() > 0.9
  assert got["suspicious"][rates < 0.02].mean() < 0.1


@pytest.mark.parametrize("call, match", [
    (lambda: mutation.gaussian_fuzzing(jax.random.key(0), _params(), 0.0), r"rate must be .* \(0, 1\]"),
    (lambda: mutation.gaussian_fuzzing(jax.random.key(0), _params(), 1.5), "rate must be"),
    (lambda: mutation.neuron_activation_inverse(jax.random.key(0), _params(), 0.001),
     "selects no unit"),
    (lambda: mutation.neuron_activation_inverse(
        jax.random.key(0), {"dense": {"kernel": jnp.ones((3, 2))}}, 0.5),
     "layers='conv' selects no parameter"),
    (lambda: mutation.gaussian_fuzzing(jax.random.key(0), _params(), 0.1, mode="mult"), "mode"),
    (lambda: mutation.weight_shuffling(jax.random.key(0), {"d": {"kernel": jnp.ones((1, 4))}},
                                       0.5, layers="kernels"), "nothing to shuffle"),
    (lambda: mutation.mutate_many(jax.random.key(0), _params(), 0, "GF", 0.1), "n must be"),
    (lambda: mutation.mutate_many(jax.random.key(0), _params(), 2, "XX", 0.1),
     "Unknown operator"),
    (lambda: _common.check_mutants(_params(), _params()), r"must have shape \(n, \*"),
    (lambda: mutation.sprt_detect(np.zeros((5, 3)), 0.05, indifference=0.1), "must lie in"),
])
def test_bad_input_is_named(call, match):
  with pytest.raises(ValueError, match=match):
    call()


def test_map_and_vmap_strategies_agree_on_a_conv_net():
  model = models.create_model(jax.random.key(0), "cnn", input_shape=(8, 8, 1), num_classes=10,
                              widths=[4], dense=8)
  g, p, s = models.split_model(model)
  x = np.asarray(jax.random.normal(jax.random.key(1), (30, 8, 8, 1)))
  muts = mutation.mutate_many(jax.random.key(2), p, 5, "GF", 0.2)

  def logits_fn(params, xb):
    return models.apply_model(g, params, s, xb)[0]
  a = mutation.mutant_predictions(logits_fn, muts, x, mutant_chunk=2, batch_size=8,
                                  strategy="map")
  b = mutation.mutant_predictions(logits_fn, muts, x, mutant_chunk=3, batch_size=30,
                                  strategy="vmap")
  np.testing.assert_array_equal(a, b)
  assert a.shape == (5, 30)


def test_mutant_predictions_sharded_over_8_devices_equal_1_device():
  import os
  import pathlib
  import subprocess
  import sys
  import textwrap
  code = textwrap.dedent("""
  import jax, jax.numpy as jnp, numpy as np
  from explicable_jax import mutation
  assert jax.device_count() == 8
  p = {"dense": {"kernel": jax.random.normal(jax.random.key(0), (6, 4)), "bias": jnp.zeros(4)}}
  x = np.asarray(jax.random.normal(jax.random.key(1), (25, 6)))
  muts = mutation.mutate_many(jax.random.key(2), p, 11, "GF", 0.3, layers="kernels")
  f = lambda q, xb: xb @ q["dense"]["kernel"] + q["dense"]["bias"]
  got = mutation.mutant_predictions(f, muts, x, mutant_chunk=5, batch_size=10)
  want = np.stack([np.argmax(x @ muts["dense"]["kernel"][i], -1) for i in range(11)])
  np.testing.assert_array_equal(got, want)
  print("ok")
  """)
  root = pathlib.Path(__file__).resolve().parents[1]
  env = {**os.environ, "PYTHONPATH": str(root),
         "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
  r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                     timeout=300)
  assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-2000:]


def test_label_change_rate_of_a_non_finite_input_is_nan_never_zero():
  p = {"dense": {"kernel": jax.random.normal(jax.random.key(0), (8, 5)),
                 "bias": jnp.zeros(5)}}
  x = np.array(jax.random.normal(jax.random.key(1), (6, 8)))
  x[2, 3] = np.nan
  muts = mutation.mutate_many(jax.random.key(2), p, 3, "GF", 0.3, layers="kernels")
  # Non-finite inputs are refused at the boundary (the conventions), naming
  # the example, whatever check_finite says (it governs the results).
  for call in (lambda: mutation.label_change_rate(_linear, muts, x, params=p),
               lambda: mutation.label_change_rate(_linear, muts, x, params=p,
                                                  check_finite=False),
               lambda: mutation.mutant_predictions(_linear, muts, x)):
    with pytest.raises(ValueError, match="NaN or inf in 1 (input|example).*indices 2"):
      call()


def test_shared_prefix_groups_and_predictions_equal_full_passes():
  """Mutants that leave the first blocks alone start from the original's
  activation there; the predictions are those of the full passes."""
  clf = models.classifier(jax.random.key(0), "resnet", input_shape=(16, 16, 3),
                          num_classes=10, depth=8)
  x = np.asarray(jax.random.uniform(jax.random.key(1), (24, 16, 16, 3)))
  muts = mutation.mutate_many(jax.random.key(2), clf.params, 6, "NAI", 0.02)
  # Hand-made mutants with a known start: none changed, and only the last block's conv.
  leaves, treedef = jax.tree_util.tree_flatten_with_path(clf.params)
  names = [jax.tree_util.keystr(p) for p, _ in leaves]
  last = max(i for i, n in enumerate(names) if "conv2" in n and "kernel" in n)
  hand = [a.copy() if hasattr(a, "copy") else a for _, a in leaves]
  tail = [jnp.stack([a, a]) for a in hand]
  tail[last] = tail[last].at[1, ..., 0].multiply(-1.0)
  tail = jax.tree.unflatten(treedef, tail)
  both = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), muts, tail)
  groups = dict(_prefix.prefix_groups(clf, both, x.shape))
  assert sorted(np.concatenate(list(groups.values())).tolist()) == list(range(8))
  assert 6 in groups[clf.layers[-1]]  # unchanged: starts at the logits
  deepest_block = [l for l in clf.layers if l.startswith("layer")][-1]
  prev = clf.layers[clf.layers.index(deepest_block) - 1]
  assert 7 in groups[prev]  # only the last block changed: starts before it
  shared = mutation.mutant_predictions(clf, both, x, mutant_chunk=4, batch_size=10,
                                       share_prefix=True)
  full = mutation.mutant_predictions(clf, both, x, mutant_chunk=4, batch_size=10,
                                     share_prefix=False)
  np.testing.assert_array_equal(shared, full)
  # vmap: groups cut into chunks of 3, the last padded by repetition.
  np.testing.assert_array_equal(mutation.mutant_predictions(
      clf, both, x, mutant_chunk=3, batch_size=10, strategy="vmap", share_prefix=True), full)
  logits = jax.jit(lambda c, xb: c.logits(xb))
  loop = np.stack([np.asarray(logits(clf.with_params(jax.tree.map(lambda a: a[i], both)),
                                     jnp.asarray(x))).argmax(-1) for i in (0, 6, 7)])
  np.testing.assert_array_equal(shared[[0, 6, 7]], loop)
  with pytest.raises(ValueError, match="share_prefix=True needs a models.Classifier"):
    mutation.mutant_predictions(lambda p, xb: clf.with_params(p).logits(xb), both, x,
                                share_prefix=True)


def test_share_prefix_by_default_only_from_enough_pairs(monkeypatch):
  """share_prefix=None shares for a Classifier with split points once there
  are SHARE_PREFIX_MIN_PAIRS (mutant, input) pairs, and never for a plain
  logits function."""
  clf = models.classifier(jax.random.key(0), "resnet", input_shape=(16, 16, 3),
                          num_classes=10, depth=8)
  x = np.asarray(jax.random.uniform(jax.random.key(1), (5, 16, 16, 3)))
  muts = mutation.mutate_many(jax.random.key(2), clf.params, 4, "NAI", 0.05)
  calls = []
  real = _prefix.predict_shared_prefix
  monkeypatch.setattr(_prefix, "predict_shared_prefix",
                      lambda *a, **k: calls.append(1) or real(*a, **k))
  monkeypatch.setattr(predictions, "SHARE_PREFIX_MIN_PAIRS", 21)
  full = mutation.mutant_predictions(clf, muts, x)  # 20 pairs: full passes
  assert calls == []
  monkeypatch.setattr(predictions, "SHARE_PREFIX_MIN_PAIRS", 20)
  np.testing.assert_array_equal(mutation.mutant_predictions(clf, muts, x), full)
  assert calls == [1]
  mutation.mutant_predictions(lambda p, xb: clf.with_params(p).logits(xb), muts, x)
  assert calls == [1]


def test_the_shared_program_computes_the_common_prefix_once():
  """predict_shared_prefix asks for the original's activation at every
  starting point from the input; XLA must merge those prefixes: the program
  costs no more FLOPs than the deepest prefix alone."""
  clf = models.classifier(jax.random.key(0), "resnet", input_shape=(16, 16, 3),
                          num_classes=10, depth=8)
  x_spec = jax.ShapeDtypeStruct((1, 16, 16, 3), jnp.float32)
  layers = [l for l in _prefix.prefix_uses(clf, x_spec) if l.startswith("layer")]
  xb, extra = jnp.zeros((8, 16, 16, 3)), (clf.params, clf.state)

  def flops(names):
    fn = jax.jit(lambda e, x: tuple(_prefix.HeadFrom(clf.spec, l).prefix(e, x)
                                    for l in names))
    cost = fn.lower(extra, xb).compile().cost_analysis()
    return (cost[0] if isinstance(cost, (list, tuple)) else cost)["flops"]

  assert len(layers) >= 3
  deepest, all_of_them = flops(layers[-1:]), flops(layers)
  assert all_of_them == pytest.approx(deepest, rel=1e-3)
  # ...while the shallow prefixes alone are a real share of it (the check can fail).
  assert flops(layers[:1]) < 0.8 * deepest


def _with_leaf(params, name_has, fn):
  """A copy of ``params`` stacked as one mutant, ``fn`` applied to the
  leaf whose path contains every string of ``name_has``."""
  leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
  out = []
  for path, a in leaves:
    key = jax.tree_util.keystr(path)
    out.append((fn(a) if all(h in key for h in name_has) else a)[None])
  return jax.tree.unflatten(treedef, out)


def _stack(*mutants):
  return jax.tree.map(lambda *a: jnp.concatenate(a), *mutants)


def test_module_starts_negated_and_input_give_the_full_passes():
  """A mutant starts at its first changed convolution: after it when the
  change negates whole filters (the original's output, signs flipped), at it
  otherwise; at the split point when that convolution reads the split
  point's activation directly. Predictions and logits are the full passes'."""
  clf = models.classifier(jax.random.key(0), "resnet", input_shape=(16, 16, 3),
                          num_classes=10, depth=8)
  x = np.asarray(jax.random.uniform(jax.random.key(1), (20, 16, 16, 3)))
  noise = lambda a: a + 0.3 * jax.random.normal(jax.random.key(5), a.shape)
  both = _stack(
      _with_leaf(clf.params, ("[1]", "conv2", "kernel"), lambda a: a.at[..., [0, 3]].multiply(-1)),
      _with_leaf(clf.params, ("[1]", "conv2", "kernel"), noise),
      _with_leaf(clf.params, ("[1]", "conv1", "kernel"), noise),
      _with_leaf(clf.params, ("stem_conv", "kernel"), lambda a: a.at[..., 2].multiply(-1)))
  groups = {tuple(i.tolist()): (s, signs)
            for s, i, signs in _prefix.start_groups(clf, both, x.shape)}
  before = clf.layers[clf.layers.index("layer2.0") - 1]
  assert groups[(0,)][0] == _prefix.Start(before, "blocks.1.conv2", "negated")
  want = np.ones(groups[(0,)][1].shape[1], np.float32)
  want[[0, 3]] = -1
  np.testing.assert_array_equal(groups[(0,)][1], want[None])
  assert groups[(1,)][0] == _prefix.Start(before, "blocks.1.conv2", "input")
  assert groups[(2,)][0] == _prefix.Start(before)  # conv1 reads the block's input
  assert groups[(3,)][0] == _prefix.Start(None, "stem_conv", "negated")
  assert _prefix.start_groups(clf, both, x.shape, modules=False)[0][0].module is None
  full = mutation.mutant_predictions(clf, both, x, batch_size=8, share_prefix=False)
  for strategy in ("map", "vmap"):
    np.testing.assert_array_equal(mutation.mutant_predictions(
        clf, both, x, mutant_chunk=3, batch_size=8, strategy=strategy, share_prefix=True), full)
  # The logits themselves, against each mutant's own forward pass.
  for start, idx, signs in _prefix.start_groups(clf, both, x.shape):
    head = _prefix.start_head(clf.spec, start, (clf.params, clf.state), jnp.asarray(x))
    for row, i in enumerate(idx):
      p = jax.tree.map(lambda a: a[i], both)
      got = head(p, None if signs is None else jnp.asarray(signs[row]))
      np.testing.assert_allclose(got, clf.with_params(p).logits(jnp.asarray(x)),
                                 rtol=1e-5, atol=1e-5)


def test_module_starts_skip_the_work_they_claim():
  """FLOPs of one mutant's part (the original's activations given): at the
  changed conv2 is one conv1 less than from the block's input, after it
  (negated filters) one conv2 less again."""
  clf = models.classifier(jax.random.key(0), "resnet", input_shape=(16, 16, 3),
                          num_classes=10, depth=8)
  xb, extra = jnp.zeros((8, 16, 16, 3)), (clf.params, clf.state)
  before = clf.layers[clf.layers.index("layer2.0") - 1]
  signs = jnp.ones(32)

  def flops(start):  # the mutant's part only: the original's activations are inputs
    h, io = _prefix.start_inputs(clf.spec, start, extra, xb)
    fn = jax.jit(lambda e, h, io: _prefix.start_logits(clf.spec, start, e, e[0], signs, h, io))
    cost = fn.lower(extra, h, io).compile().cost_analysis()
    return (cost[0] if isinstance(cost, (list, tuple)) else cost)["flops"]

  block = flops(_prefix.Start(before))
  at = flops(_prefix.Start(before, "blocks.1.conv2", "input"))
  after = flops(_prefix.Start(before, "blocks.1.conv2", "negated"))
  # XLA counts the taps that fall inside the image: along one axis of the 8
  # outputs, 22 of 24 for the stride-1 conv2 and 23 of 24 for the stride-2 conv1.
  conv1 = 2 * 8 * 23 * 23 * 16 * 32  # batch 8, 3x3, 16 to 32 channels
  conv2 = 2 * 8 * 22 * 22 * 32 * 32  # 3x3, 32 to 32 channels
  assert block - at == pytest.approx(conv1, rel=0.05)
  assert at - after == pytest.approx(conv2, rel=0.05)


def test_module_starts_only_where_exact():
  """A user NNX model split at sub-module names: a module called twice never
  starts a mutant; a Linear whose output columns are negated does."""
  from flax import nnx

  class Twice(nnx.Module):
    def __init__(self, rngs):
      self.a = nnx.Conv(3, 4, (3, 3), rngs=rngs)
      self.b = nnx.Conv(4, 4, (3, 3), rngs=rngs)
      self.out = nnx.Linear(4, 5, rngs=rngs)

    def __call__(self, x):
      h = jax.nn.relu(self.a(x))
      h = jax.nn.relu(self.b(jax.nn.relu(self.b(h))))
      return self.out(h.mean((1, 2)))

  clf = models.from_nnx(Twice(nnx.Rngs(0)), layers=["a"], input_shape=(8, 8, 3))
  x = np.asarray(jax.random.uniform(jax.random.key(1), (12, 8, 8, 3)))
  both = _stack(
      _with_leaf(clf.params, ("'b'", "kernel"), lambda a: a.at[..., 1].multiply(-1)),
      _with_leaf(clf.params, ("out", "kernel"), lambda a: a.at[..., 4].multiply(-1)),
      _with_leaf(clf.params, ("out", "bias"), lambda a: a + 1.0))
  starts = {tuple(i.tolist()): s for s, i, _ in _prefix.start_groups(clf, both, x.shape)}
  assert starts[(0,)] == _prefix.Start("a")  # b is called twice
  assert starts[(1,)] == _prefix.Start("a", "out", "negated")
  assert starts[(2,)] == _prefix.Start("a", "out", "input")  # a bias shift is no negation
  full = mutation.mutant_predictions(clf, both, x, share_prefix=False)
  np.testing.assert_array_equal(
      mutation.mutant_predictions(clf, both, x, batch_size=5, share_prefix=True), full)
  with pytest.raises(ValueError, match="share_prefix must be None, True, False or 'layers'"):
    mutation.mutant_predictions(clf, both, x, share_prefix="blocks")


# ---------------------------------------------------------------------------
# The package's seams: the operator registry, the per-platform path, the
# bounded caches, the backend protocol, the doctests.


def _zero_half(key, params, rate):
  """A test operator: zero every kernel (rate and key unused)."""
  return jax.tree.map(lambda w: 0 * w, params)


def test_register_operator_reaches_make_mutants_and_refuses_a_taken_name():
  p = {"dense": {"kernel": jnp.ones((3, 2)), "bias": jnp.ones(2)}}
  try:
    mutation.register_operator("ZERO_TEST", _zero_half)
    assert "ZERO_TEST" in mutation.operator_names()
    muts, info = mutation.make_mutants(jax.random.key(0), p, 2, "ZERO_TEST", 0.5)
    assert info["drawn"] == 2
    np.testing.assert_array_equal(muts["dense"]["kernel"], 0.0)
    with pytest.raises(ValueError, match="already a registered mutation operator"):
      mutation.register_operator("ZERO_TEST", _zero_half)
    mutation.register_operator("ZERO_TEST", mutation.neuron_switch, overwrite=True)
    assert mutation.OPERATORS["ZERO_TEST"] is mutation.neuron_switch
  finally:
    mutation.OPERATORS.pop("ZERO_TEST", None)
  assert "ZERO_TEST" not in mutation.operator_names()
  with pytest.raises(TypeError, match="fn must be a function"):
    mutation.register_operator("BAD", "not callable")
  assert mutation.operator_names()[:4] == ("NAI", "GF", "WS", "NS")


@pytest.mark.parametrize("command", ["audit", "detect"])
def test_the_cli_reads_the_operator_registry(command, capsys):
  """A registered operator is a valid --operator of the parsers built after
  it; an unregistered name is refused (exit status 2)."""
  from explicable_jax.app import cli
  argv = [command, "--model", "m", "--dataset", "digits", "--out", "o", "--operator"]
  with pytest.raises(SystemExit) as refused:
    cli.build_parser().parse_args([*argv, "ZERO_TEST"])
  assert refused.value.code == 2 and "ZERO_TEST" in capsys.readouterr().err
  try:
    mutation.register_operator("ZERO_TEST", _zero_half)
    try:
      args = cli.build_parser().parse_args([*argv, "ZERO_TEST"])
    except SystemExit:
      pytest.fail(f"the CLI's {command} --operator refuses a registered operator")
    assert args.operator == "ZERO_TEST"
  finally:
    mutation.OPERATORS.pop("ZERO_TEST", None)


def test_default_mutant_path_keeps_the_cpu_choice_and_the_plain_path_on_accelerators():
  cpu = mutation.MutantPath("map", mutation.SHARE_PREFIX_MIN_PAIRS)
  plain = mutation.MutantPath("vmap", None)
  assert mutation.default_mutant_path("cpu") == cpu
  assert mutation.default_mutant_path("gpu") == plain
  assert mutation.default_mutant_path("tpu") == plain
  if jax.default_backend() == "cpu":
    assert mutation.default_mutant_path() == cpu


def test_mutant_predictions_follows_the_platform_path(monkeypatch):
  """``strategy="auto"`` and ``share_prefix=None`` take what
  default_mutant_path says: the CPU path shares from its pair count with
  lax.map, the accelerator path runs the plain vmap even past it."""
  clf = models.classifier(jax.random.key(0), "cnn", input_shape=(8, 8, 1), num_classes=10,
                          widths=[4], dense=8)
  x = np.asarray(jax.random.uniform(jax.random.key(1), (6, 8, 8, 1)))
  muts = mutation.mutate_many(jax.random.key(2), clf.params, 3, "NAI", 0.25)
  seen = []
  real_shared, real_chunk = _prefix.predict_shared_prefix, predictions._chunk_predictor
  monkeypatch.setattr(_prefix, "predict_shared_prefix",
                      lambda *a, **k: seen.append(("shared", a[4])) or real_shared(*a, **k))
  monkeypatch.setattr(predictions, "_chunk_predictor",
                      lambda f, s, d: seen.append(("plain", s)) or real_chunk(f, s, d))
  results = {}
  for platform in ("cpu", "gpu"):
    path = mutation.default_mutant_path(platform)
    if path.share_prefix_min_pairs is not None:  # 18 pairs: enough for the test
      path = dataclasses.replace(path, share_prefix_min_pairs=18)
    monkeypatch.setattr(predictions, "default_mutant_path", lambda platform=None, p=path: p)
    seen.clear()
    results[platform] = mutation.mutant_predictions(clf, muts, x)
    assert seen == ([("shared", "map")] if platform == "cpu" else [("plain", "vmap")]), seen
  np.testing.assert_array_equal(results["cpu"], results["gpu"])


def test_the_structure_caches_are_bounded_and_reused(monkeypatch):
  lru = _prefix.LRU(2)
  made = []
  make = lambda k: (lambda: made.append(k) or k.upper())  # noqa: E731
  assert [lru.get(k, make(k)) for k in ("a", "b", "a", "c", "a", "b")] == list("ABACAB")
  assert made == ["a", "b", "c", "b"]  # "b" was the least recently used when "c" came
  assert len(lru) == 2
  assert lru.get(["unhashable"], lambda: 1) == 1 and len(lru) == 2
  # The real caches: one entry per model structure, never more than maxsize.
  monkeypatch.setattr(_prefix.PREFIX_USES, "maxsize", 1)
  _prefix.PREFIX_USES.clear()
  clf = models.classifier(jax.random.key(0), "cnn", input_shape=(8, 8, 1), num_classes=10,
                          widths=[4], dense=8)
  spec = jax.ShapeDtypeStruct((1, 8, 8, 1), jnp.float32)
  first = _prefix.prefix_uses(clf, spec)
  assert _prefix.prefix_uses(clf.with_params(jax.tree.map(lambda a: a + 1, clf.params)),
                             spec) is first  # new values, same structure: reused
  _prefix.prefix_uses(clf, jax.ShapeDtypeStruct((1, 6, 6, 1), jnp.float32))
  assert len(_prefix.PREFIX_USES) == 1
  assert _prefix.MODULE_INFO.maxsize < 100


def test_sub_module_starts_are_a_declared_capability():
  """The NNX backend declares SubModuleStarts; a backend without it (plain
  functions) gets split-point starts only, with the full passes' answer."""
  from explicable_jax.models._protocols import SubModuleStarts
  assert issubclass(models.NNXBackend, SubModuleStarts)
  assert not issubclass(models.FunctionBackend, SubModuleStarts)
  assert not issubclass(models.LinenBackend, SubModuleStarts)
  k = jax.random.split(jax.random.key(3), 2)
  p = {"a": {"kernel": jax.random.normal(k[0], (5, 6))},
       "b": {"kernel": jax.random.normal(k[1], (6, 4))}}
  feats = lambda q, x: jnp.tanh(x @ q["a"]["kernel"])  # noqa: E731
  head = lambda q, h: h @ q["b"]["kernel"]  # noqa: E731
  clf = models.from_functions(lambda q, x: head(q, feats(q, x)), p,
                              splits={"a": (feats, head)}, input_shape=(5,), num_classes=4)
  x = np.asarray(jax.random.normal(jax.random.key(4), (9, 5)))
  muts = _stack(_with_leaf(p, ("'b'",), lambda a: a.at[..., 1].multiply(-1)),
                _with_leaf(p, ("'a'",), lambda a: -a))
  starts = [s for s, _, _ in _prefix.start_groups(clf, muts, x.shape)]
  assert starts == [_prefix.Start("a"), _prefix.Start(None)]  # no module starts
  np.testing.assert_array_equal(
      mutation.mutant_predictions(clf, muts, x, share_prefix=True),
      mutation.mutant_predictions(clf, muts, x, share_prefix=False))


def test_the_package_docstring_examples_run():
  import doctest
  import importlib
  for name in ("__init__", "operators", "ensembles", "predictions", "sprt"):
    module = importlib.import_module("explicable_jax.mutation" + ("" if name == "__init__"
                                                                   else f".{name}"))
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0, (name, result)
