"""The conventions are checked once, at every public entry (issue 32).

The public functions are found from the API (every module's public names), so
a function added tomorrow is covered the day it is added: a parameter whose
name says it is an image batch, labels, a mask, logits, scores or a
perturbation size must be declared with ``conventions.boundary`` (or be listed
below, with the reason it is not a boundary), and every declared parameter is
fed each wrong form of its kind and must raise ``ConventionError`` naming it.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import explicable_jax
from explicable_jax import conventions, data, models, training
from explicable_jax.conventions import ConventionError

# Parameter names that say what kind of argument a parameter is.
NAME_KINDS = {
    "x": {"inputs", "images", "batch"}, "images": {"images", "inputs"},
    "inputs": {"inputs", "batch"},
    "labels": {"labels"}, "y": {"labels"}, "preds": {"labels"},
    "mask": {"mask"}, "masks": {"mask"}, "is_wrong": {"mask"}, "is_positive": {"mask"},
    "annotation": {"mask"},
    "logits": {"logits", "class_scores"},
    "scores": {"scores"}, "error_scores": {"scores"}, "baseline_scores": {"scores"},
    "epsilon": {"perturbation"}, "eps": {"perturbation"},
    "stdevs": {"perturbation"}, "stddev": {"perturbation"},
    "attributions": {"maps"}, "label_changes": {"mask"},
    "p_value": {"probability"}, "absolute": {"flag"}, "graphdef": {"graphdef"},
}

# Public functions with such a parameter that are not a boundary, and why.
NOT_A_BOUNDARY = {
    "explicable_jax.attribution.input.gradient": "one example under vmap (x is not a batch); "
        "the batched methods declare x",
    "explicable_jax.attribution.input.gradient_x_input": "one example under vmap",
    "explicable_jax.attribution.input.integrated_gradients": "one example under vmap",
    "explicable_jax.attribution.input.smoothgrad": "one example under vmap",
    "explicable_jax.data.augment.random_crop_flip": "one image inside a jitted step",
    "explicable_jax.models.apply_model": "the pure forward pass inside jitted steps",
    "explicable_jax.models.base.check_image_input": "the zoo models' own shape check",
    "explicable_jax.models.base.normalize_input": "inside the zoo models' forward pass",
    "explicable_jax.training.step.logits_batch": "jitted; predict() declares x",
    "explicable_jax.training.step.to_float": "jitted conversion (conventions.to_unit_float)",
    "explicable_jax.detection.detector.mlp_logit": "the detector network's forward pass",
    "explicable_jax.viz.heatmap": "labels are tick names, not class indices",
    "explicable_jax.data.to_float": "is conventions.check_inputs",
    "explicable_jax.data.augment.augment_cifar": "checks its images itself (check_images: "
        "the layout always, the scale when concrete), also inside jitted steps",
}


def _public_functions():
  out = {}
  for info in pkgutil.walk_packages(explicable_jax.__path__, "explicable_jax."):
    parts = info.name.split(".")
    if (any(p.startswith("_") for p in parts) or info.name.endswith("__main__")
        or info.name == "explicable_jax.conventions"):
      continue
    mod = importlib.import_module(info.name)
    names = getattr(mod, "__all__", None) or [n for n in vars(mod) if not n.startswith("_")]
    for name in names:
      fn = getattr(mod, name, None)
      if not inspect.isfunction(fn) and not (callable(fn) and hasattr(fn, "__wrapped__")):
        continue
      if inspect.isclass(fn):
        continue
      # Defined here, or re-exported from a private module of the package
      # (a public name of a package whose code lives in _private.py).
      home = getattr(fn, "__module__", "") or ""
      if not home.startswith("explicable_jax") or home == "explicable_jax.conventions":
        continue
      if home != info.name and not any(p.startswith("_") for p in home.split(".")):
        continue
      out[f"{home}.{fn.__name__}"] = fn
  return out


PUBLIC = _public_functions()


def _kind_params(fn):
  try:
    params = inspect.signature(fn).parameters
  except (TypeError, ValueError):
    return {}
  return {p: NAME_KINDS[p] for p in params if p in NAME_KINDS}


CANDIDATES = sorted(name for name, fn in PUBLIC.items() if _kind_params(fn))


def test_the_walk_finds_the_api():
  # The walk is not vacuous: it sees the functions the issue names.
  for name in ("explicable_jax.training.loop.predict", "explicable_jax.metrics.auroc",
               "explicable_jax.losses.cross_entropy",
               "explicable_jax.attribution.batched.integrated_gradients"):
    assert name in CANDIDATES, name
  assert len(CANDIDATES) > 40


@pytest.mark.parametrize("name", CANDIDATES)
def test_every_public_function_declares_its_conventions(name):
  fn = PUBLIC[name]
  if name in NOT_A_BOUNDARY:
    return
  declared = conventions.declared(fn)
  for param, kinds in _kind_params(fn).items():
    assert (declared.get(param) or "").removesuffix("{}") in kinds, (
        f"{name}: parameter {param!r} looks like {'/'.join(sorted(kinds))} but is not "
        f"declared with conventions.boundary (declared: {declared}); declare it, or list "
        "the function in NOT_A_BOUNDARY with the reason")


# Array parameters (by annotation) that no boundary kind describes, and the
# one check each goes through instead.
CHECKED_ELSEWHERE = {
    **{(f, "weights"): "similarity.check_weight_matrix, the one weight-matrix check" for f in (
        "explicable_jax.losses.make_weighted_loss", "explicable_jax.losses.weighted_targets",
        "explicable_jax.losses.weighted_cross_entropy",
        "explicable_jax.similarity.as_stored_by_authors",
        "explicable_jax.similarity.check_weight_matrix", "explicable_jax.similarity.row_normalize")},
    **{(f, "similarity_matrix"): "similarity.check_weight_matrix" for f in (
        "explicable_jax.metrics.hard_soft_scores", "explicable_jax.metrics.mean_mistake_similarity",
        "explicable_jax.stats.bootstrap_mistake_similarity_difference")},
    ("explicable_jax.similarity.explicability_matrix", "matrices"): "check_weight_matrix each",
    ("explicable_jax.similarity.from_ratings", "ratings"): "the CHL ratings' own check",
    ("explicable_jax.similarity.from_soft_labels", "probs"): "its probability-rows check",
    ("explicable_jax.stats.t_test_over_seeds", "differences"): "a 1-D finite sample check",
    ("explicable_jax.attribution.input.class_score_fn", "target"): "one class or N classes, "
        "checked against the logits it scores",
    ("explicable_jax.attribution.layer.head_gradient_is_constant", "target"): "as "
        "class_score_fn",
    ("explicable_jax.deliberative.score_insecurity", "part_centers"): "integer part "
        "coordinates, checked against the mask's grid",
    ("explicable_jax.deliberative.score_insecurity", "part_segments"): "part ids per pixel, "
        "checked against the mask's shape",
}


def _array_params(fn):
  """Parameters annotated as arrays (``ArrayLike``, ``jax.Array``,
  ``InputsLike``...), less PRNG keys and functions."""
  try:
    params = inspect.signature(fn).parameters
  except (TypeError, ValueError):
    return []
  return [p for p, d in params.items()
          if any(t in str(d.annotation) for t in ("Array", "InputsLike", "Baselines"))
          and p != "key" and "Callable" not in str(d.annotation)]


ARRAY_PARAMS = sorted((name, p) for name, fn in PUBLIC.items() if name not in NOT_A_BOUNDARY
                      for p in _array_params(fn) if (name, p) not in CHECKED_ELSEWHERE)


def test_the_array_parameter_walk_is_not_vacuous():
  assert ("explicable_jax.attribution.evaluation._randomisation.ssim", "a") in ARRAY_PARAMS
  assert len(ARRAY_PARAMS) > 100
  for name, param in CHECKED_ELSEWHERE:  # every exception names a real parameter
    assert param in inspect.signature(PUBLIC[name]).parameters, (name, param)


@pytest.mark.parametrize("name,param", ARRAY_PARAMS)
def test_every_array_parameter_of_the_api_is_declared(name, param):
  """The name rule above misses arrays with other names (``a``, ``features``,
  ``class_maps``): the nineteenth trial found NaN maps passed silently
  through ``spearman_rank_correlation``. Every array parameter is declared,
  or listed in CHECKED_ELSEWHERE with the check it goes through."""
  declared = conventions.declared(PUBLIC[name])
  assert param in declared, (
      f"{name}: array parameter {param!r} is not declared with conventions.boundary "
      f"(declared: {declared}); declare its kind, or list it in CHECKED_ELSEWHERE with the "
      "check it goes through")


BOOL_OPTIONS = sorted((name, param) for name, fn in PUBLIC.items()
                      for param in conventions.bool_parameters(fn))


def test_every_bool_option_of_the_api_is_a_checked_flag():
  """A bool option given as a string ('no' is truthy) was read as True by
  functions outside the boundary; every public function with a ``bool``
  parameter now goes through it, which declares the parameter a flag, so
  the walk below feeds each one 'no' and 2."""
  assert len(BOOL_OPTIONS) > 40  # the walk is not vacuous
  missing = [f"{name}({param})" for name, param in BOOL_OPTIONS
             if conventions.declared(PUBLIC[name]).get(param) != "flag"]
  assert not missing, f"bool options outside conventions.boundary: {missing}"


WRONG = {
    "graphdef": {
        "parameters": {"dense": {"kernel": np.zeros((2, 2), np.float32)}},
        "a name": "resnet20",
    },
    "images": {
        "channel-first": np.random.default_rng(0).random((2, 3, 8, 8)).astype(np.float32),
        "0..255 floats": np.full((2, 8, 8, 3), 200.0, np.float32),
        "NaN": np.full((2, 8, 8, 3), np.nan, np.float32),
        "int pixels > 255": np.full((2, 8, 8, 3), 300, np.int32),
        "one image": np.zeros((8, 8, 3), np.float32),
        "strings": np.array([["a", "b"]]),
    },
    "inputs": {
        "channel-first": np.random.default_rng(0).random((2, 3, 8, 8)).astype(np.float32),
        "0..255 floats": np.full((2, 8, 8, 3), 200.0, np.float32),
        "NaN": np.full((2, 4), np.nan, np.float32),
        "int pixels > 255": np.full((2, 8, 8, 3), 300, np.int32),
        "strings": np.array([["a", "b"]]),
    },
    "batch": {
        "NaN": np.full((2, 4), np.nan, np.float32),
        "strings": np.array([["a", "b"]]),
        "scalar": np.float32(1.0),
    },
    "labels": {
        "(N, 1)": np.zeros((4, 1), np.int32),
        "one-hot": np.eye(3, dtype=np.float32)[[0, 1, 2, 0]],
        "fractional": np.array([0.5, 1.0, 0.0, 1.0]),
        "NaN": np.array([np.nan, 1.0, 0.0, 1.0]),
        "negative": np.array([-1, 0, 1, 0]),
        "bool": np.array([True, False, True, False]),
    },
    "mask": {
        "0/255": np.array([0, 255, 255, 0]),
        "values 0..2": np.array([0, 1, 2, 0]),
        "NaN": np.array([np.nan, 1.0, 0.0, 1.0]),
    },
    "logits": {
        "(N,)": np.zeros(4, np.float32),
        "(N, C, 1)": np.zeros((4, 3, 1), np.float32),
        "NaN": np.full((4, 3), np.nan, np.float32),
        "probabilities": np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [1 / 3, 1 / 3, 1 / 3],
                                   [0.0, 1.0, 0.0]], np.float32),
    },
    "class_scores": {
        "(N,)": np.zeros(4, np.float32),
        "(N, C, 1)": np.zeros((4, 3, 1), np.float32),
        "NaN": np.full((4, 3), np.nan, np.float32),
    },
    "scores": {
        "(N, 2)": np.zeros((4, 2), np.float32),
        "NaN": np.array([np.nan, 1.0, 0.0, 1.0]),
        "bool": np.array([True, False, True, False]),
    },
    "perturbation": {
        "0..255 units": 8,
        "negative": -0.1,
        "NaN": float("nan"),
        "a sequence": (0.1, 0.2),
    },
    "baseline": {
        "0..255 scalar": 255.0,
        "0..255 floats": np.full((2, 8, 8, 3), 200.0, np.float32),
        "NaN": np.full((2, 8, 8, 3), np.nan, np.float32),
        "strings": np.array([["a", "b"]]),
    },
    "maps": {
        "NaN": np.full((2, 4), np.nan, np.float32),
        "strings": np.array([["a", "b"]]),
        "scalar": np.float32(1.0),
    },
    "flag": {
        "a string": "no",
        "2": 2,
    },
    "number": {
        "NaN": float("nan"),
        "inf": float("inf"),
        "a string": "0.5",
    },
    "probability": {
        "5.0": 5.0,
        "negative": -0.1,
        "NaN": float("nan"),
    },
}

DECLARED = sorted((name, param, kind) for name, fn in PUBLIC.items()
                  for param, kind in conventions.declared(fn).items())
CASES = [(name, param, kind, form) for name, param, kind in DECLARED
         for form in WRONG[kind.removesuffix("{}")]]


def _placeholder_call(fn, param, value):
  """``fn`` called with ``value`` for ``param`` and ``None`` for every other
  required parameter: the declaration checks before the body runs."""
  args, kwargs = [], {}
  for p in inspect.signature(fn).parameters.values():
    if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
      continue
    if p.name == param:
      v = value
    elif p.default is not p.empty:
      continue
    else:
      v = None
    if p.kind == p.KEYWORD_ONLY:
      kwargs[p.name] = v
    else:
      args.append(v)
  return fn(*args, **kwargs)


def test_every_kind_is_exercised():
  assert {kind.removesuffix("{}") for _, _, kind in DECLARED} == set(conventions.KINDS)


@pytest.mark.parametrize("name,param,kind,form", CASES,
                         ids=[f"{n.split('explicable_jax.')[1]}-{p}-{f}" for n, p, _, f in CASES])
def test_every_declared_argument_refuses_each_wrong_form(name, param, kind, form):
  fn = PUBLIC[name]
  value = WRONG[kind.removesuffix("{}")][form]
  if kind.endswith("{}"):
    value = {"method": value}
  with pytest.raises(ConventionError) as err:
    _placeholder_call(fn, param, value)
  assert param in str(err.value)


# ---------------------------------------------------------------------------
# The checks themselves: known answers.

def test_images_convert_integer_pixels_the_same_whatever_the_dtype():
  u8 = np.arange(0, 256, 17, dtype=np.uint8).reshape(1, 4, 4, 1)
  for dtype in (np.uint8, np.int32, np.int64, np.uint16):
    out = conventions.check_images("x", u8.astype(dtype))
    np.testing.assert_allclose(out, u8 / 255.0, rtol=1e-6)
    assert out.dtype == np.float32
  # jax in, jax out; float [0, 1] images unchanged.
  x = jnp.linspace(0, 1, 16).reshape(1, 4, 4, 1)
  out = conventions.check_images("x", x)
  assert isinstance(out, jax.Array) and np.allclose(out, x)


def test_check_inputs_keeps_token_ids_and_converts_pixel_vectors():
  ids = np.array([[1, 2, 300]], np.int32)
  assert conventions.check_inputs("x", ids).dtype == np.int32
  np.testing.assert_allclose(conventions.check_inputs("x", np.array([[255]], np.uint8)), [[1.0]])
  with pytest.raises(ConventionError, match="input_shape"):
    conventions.check_inputs("x", np.zeros((2, 5, 5, 3), np.float32), input_shape=(4, 4, 3))
  with pytest.raises(ConventionError, match="transpose"):
    conventions.check_inputs("x", np.zeros((2, 3, 4, 4), np.float32), input_shape=(4, 4, 3))


def test_labels_are_checked_against_the_number_of_classes():
  assert conventions.check_labels("y", [0.0, 2.0], 3).tolist() == [0, 2]
  with pytest.raises(ConventionError, match=r"\[0, 3\).*from 0 to 3"):
    conventions.check_labels("y", [0, 3], 3)
  with pytest.raises(ConventionError, match="one label per example"):
    conventions.check_labels("y", [0, 1], 3, n=3)


def test_perturbation_names_the_fix():
  with pytest.raises(ConventionError, match=r"8 / 255 = 0.03137"):
    conventions.check_perturbation("epsilon", 8)
  assert conventions.check_perturbation("epsilon", 8 / 255) == pytest.approx(8 / 255)


# ---------------------------------------------------------------------------
# The conventions through real calls, with a model.

@pytest.fixture(scope="module")
def digits_model():
  ds = data.load("digits", "test")
  clf = models.classifier(jax.random.key(0), "mlp", input_shape=ds.input_shape,
                          num_classes=10, hidden=(8,))
  return ds, clf


def test_predict_treats_every_integer_pixel_dtype_alike(digits_model):
  ds, clf = digits_model
  u8 = np.round(ds.x[:8] * 255).astype(np.uint8)
  a = training.predict(clf, u8)
  b = training.predict(clf, u8.astype(np.int32))
  c = training.predict(clf, u8.astype(np.float32) / 255)
  np.testing.assert_allclose(a, b, rtol=1e-6)
  np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6)
  with pytest.raises(ConventionError, match="0..255 pixels stored as floats"):
    training.predict(clf, u8.astype(np.float32))


def test_labels_outside_the_models_classes_are_refused(digits_model):
  from explicable_jax import losses, metrics
  ds, clf = digits_model
  logits = training.predict(clf, ds.x[:4])
  with pytest.raises(ConventionError, match=r"\[0, 10\)"):
    metrics.confusion_matrix(np.array([0, 1, 10, 2]), np.array([0, 1, 2, 3]), 10)
  with pytest.raises(ConventionError, match="labels"):
    losses.cross_entropy(logits, np.array([[0], [1], [2], [3]]))
  with pytest.raises(ConventionError, match=r"y must lie in \[0, 10\)"):
    data.Dataset(ds.x[:3], np.array([0, 1, 10]), 10, tuple("0123456789"))


def test_nan_logits_from_the_model_are_reported_not_passed_on():
  def apply(p, x):
    return jnp.where(x[:, :1] > 0.5, jnp.nan, 0.0) * jnp.ones((1, 3))
  clf = models.from_functions(apply, {}, input_shape=(2,), num_classes=3)
  x = np.array([[0.0, 0.0], [1.0, 0.0]], np.float32)
  with pytest.raises(ConventionError, match="indices 1"):
    training.predict(clf, x)
  assert np.isnan(training.predict(clf, x, check_finite=False)[1]).all()


def test_a_rrr_annotation_must_be_a_mask():
  x = np.zeros((4, 2), np.float32)
  with pytest.raises(ConventionError, match=r"extras\['annotation'\].*mask > 0"):
    data.Dataset(x, np.zeros(4, np.int32), 2, ("a", "b"),
                 extras={"annotation": np.full((4, 2), 255)})


def test_channel_first_mnist_file_is_refused_naming_the_file(tmp_path):
  rng = np.random.default_rng(0)
  np.savez(tmp_path / "mnist.npz", x_train=rng.random((5, 1, 28, 28)).astype(np.float32),
           y_train=np.zeros(5, np.int64), x_test=rng.random((5, 1, 28, 28)).astype(np.float32),
           y_test=np.zeros(5, np.int64))
  with pytest.raises(ConventionError, match=r"mnist.npz: x_test.*transpose|channel"):
    data.load("mnist", "test", data_dir=str(tmp_path), source="local")


def test_a_model_declared_with_another_input_scale_skips_the_range_rule():
  apply = lambda p, x: x.reshape(x.shape[0], -1)[:, :3]
  x = np.random.default_rng(0).normal(size=(4, 4, 4, 3)).astype(np.float32) * 2  # standardised
  strict = models.from_functions(apply, {}, input_shape=(4, 4, 3), num_classes=3)
  with pytest.raises(ConventionError, match="input_range=None"):
    training.predict(strict, x)
  free = models.from_functions(apply, {}, input_shape=(4, 4, 3), num_classes=3,
                               input_range=None)
  np.testing.assert_allclose(training.predict(free, x), x.reshape(4, -1)[:, :3])
  with pytest.raises(ConventionError, match="NaN"):  # the other rules still hold
    training.predict(free, np.full_like(x, np.nan))


# ---------------------------------------------------------------------------
# The classifier's own methods are entries too (issue 32, last trial).

def _methods(clf):
  features, head = clf.split("dense_0")
  return {
      "logits": clf.logits, "__call__": clf, "apply": lambda x: clf.apply(x)[0],
      "features": features, "logits_with": lambda x: clf.logits_with(clf.params, x),
  }


METHOD_WRONG = {
    "NaN": (np.full((2, 8, 8, 1), np.nan, np.float32), "NaN or inf"),
    "0..255 floats": (np.full((2, 8, 8, 1), 200.0, np.float32), "0..255 pixels stored as floats"),
    "channel-first": (np.zeros((2, 1, 8, 8), np.float32), "channel-first"),
    "another input shape": (np.zeros((2, 32, 32, 3), np.float32),
                            r"expects \(H, W, C\) \(8, 8, 1\).*\(2, 32, 32, 3\)"),
}


@pytest.fixture(scope="module")
def image_mlp():
  return models.classifier(jax.random.key(0), "mlp", input_shape=(8, 8, 1), num_classes=10,
                           hidden=(8,))


@pytest.mark.parametrize("method", ["logits", "__call__", "apply", "features", "logits_with"])
@pytest.mark.parametrize("form", sorted(METHOD_WRONG))
def test_classifier_methods_refuse_what_predict_refuses(image_mlp, method, form):
  x, match = METHOD_WRONG[form]
  fn = _methods(image_mlp)[method]
  with pytest.raises(ConventionError, match=match) as err:
    fn(x)
  assert str(err.value).startswith("x ")
  with pytest.raises(ConventionError, match=match):  # predict says the same
    training.predict(image_mlp, x)


def test_classifier_methods_convert_pixels_and_check_shapes_under_jit(image_mlp):
  u8 = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 1)).astype(np.uint8)
  unit = u8.astype(np.float32) / 255
  for pixels in (u8, u8.astype(np.int32)):
    np.testing.assert_allclose(image_mlp.logits(pixels), image_mlp.logits(unit), rtol=1e-6)
    np.testing.assert_allclose(jax.jit(image_mlp.logits)(pixels), image_mlp.logits(unit),
                               rtol=1e-5, atol=1e-6)
  # Under jit values are not read (the policy outside jit only), shapes are.
  assert jax.jit(image_mlp.logits)(np.full((2, 8, 8, 1), np.nan, np.float32)).shape == (2, 10)
  with pytest.raises(ConventionError, match=r"\(8, 8, 1\)"):
    jax.jit(image_mlp.logits)(np.zeros((2, 32, 32, 3), np.float32))
  _, head = image_mlp.split("dense_0")
  with pytest.raises(ConventionError, match=r"^h holds NaN"):
    head(np.full((2, 8), np.nan, np.float32))


def test_a_model_for_28x28x1_given_cifar_images_names_both_shapes():
  mnist = data.Dataset(np.zeros((4, 28, 28, 1), np.float32), np.arange(4), 10,
                       tuple("0123456789"))
  cifar = data.Dataset(np.zeros((4, 32, 32, 3), np.float32), np.arange(4), 10,
                       tuple("0123456789"))
  for name in ("mlp", "cnn"):
    clf = models.classifier(jax.random.key(0), name, input_shape=(28, 28, 1), num_classes=10,
                            **({"hidden": (4,)} if name == "mlp" else {"widths": (4,),
                                                                         "dense": 4}))
    assert training.evaluate(clf, mnist)["count"] == 4
    for call in (lambda: clf.logits(cifar.x), lambda: training.predict(clf, cifar.x),
                 lambda: training.evaluate(clf, cifar)):
      with pytest.raises(ConventionError,
                         match=r"expects \(H, W, C\) \(28, 28, 1\).*\(4, 32, 32, 3\)"):
        call()


# ---------------------------------------------------------------------------
# Probabilities where logits are expected.

def test_probabilities_where_logits_are_expected_are_refused_with_the_fix():
  from explicable_jax import losses, metrics
  from explicable_jax.detection import scores
  z = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
  p = np.asarray(jax.nn.softmax(z))
  y = np.array([0, 1, 2, 3, 0])
  for call in (lambda v: losses.cross_entropy(v, y), lambda v: scores.msp(v),
               lambda v: metrics.explicability_losses(v, y, {"I": np.eye(4)})):
    with pytest.raises(ConventionError, match=r"^logits must hold logits.*5 rows.*"
                                              r"probabilities.*jnp.log\(probabilities\)"):
      call(p)
    call(np.log(p))  # the fix works: log-probabilities are logits
  np.testing.assert_allclose(losses.cross_entropy(np.log(p), y), losses.cross_entropy(z, y),
                             rtol=1e-5)
  with pytest.raises(ConventionError, match="one-hot rows"):
    losses.cross_entropy(np.eye(4, dtype=np.float32)[y], y)
  # Functions that read only the argmax take probabilities (class_scores).
  assert metrics.top1_accuracy(p, y) == metrics.top1_accuracy(z, y)
  np.testing.assert_array_equal(metrics.predictions(p), metrics.predictions(z))
  # One row, or logits that merely lie in [0, 1], are not guessed to be probabilities.
  losses.cross_entropy(p[:1], y[:1])
  losses.cross_entropy(np.full((3, 4), 0.5, np.float32), y[:3])


# ---------------------------------------------------------------------------
# Data sets against the model's scale.

def test_fit_and_evaluate_refuse_0_255_float_data_for_a_unit_range_model():
  import optax
  from explicable_jax import losses
  x = np.random.default_rng(0).integers(0, 256, (16, 8, 8, 1)).astype(np.float32)
  ds = data.Dataset(x, np.arange(16) % 10, 10, tuple("0123456789"), name="raw")
  clf = models.classifier(jax.random.key(0), "mlp", input_shape=(8, 8, 1), num_classes=10,
                          hidden=(4,))
  opt = optax.sgd(0.1)
  state = training.create_train_state(jax.random.key(1), clf, opt)
  step = training.make_train_step(losses.cross_entropy_loss, opt)
  match = r"train_ds\.x \(dataset 'raw'.*0\.\.255 pixels stored as floats: pass x / 255"
  with pytest.raises(ConventionError, match=match):
    training.fit(state, ds, train_step=step, epochs=1, batch_size=8, progress=False)
  with pytest.raises(ConventionError, match=r"^ds\.x .*0\.\.255 pixels"):
    training.evaluate(clf, ds)
  ok = data.Dataset(x / 255, ds.y, 10, ds.class_names, name="unit")
  with pytest.raises(ConventionError, match=r"eval_ds\.x .*0\.\.255 pixels"):
    training.fit(state, ok, train_step=step, epochs=1, batch_size=8, progress=False,
                 eval_ds=ds)
  assert training.evaluate(clf, ok)["count"] == 16
  # A model declared to take another scale takes them.
  free = clf.replace(input_range=None)
  assert training.evaluate(free, ds)["count"] == 16


def test_inputs_to_float_is_the_one_inputs_rule():
  ids = np.array([[3, 700]], np.int32)
  assert conventions.inputs_to_float(ids) is ids
  img = np.full((1, 2, 2, 1), 51, np.int64)
  np.testing.assert_allclose(conventions.inputs_to_float(img), 0.2)
  np.testing.assert_allclose(conventions.inputs_to_float(jnp.asarray(img)), 0.2)
  np.testing.assert_allclose(conventions.inputs_to_float(np.array([[255]], np.uint8)), 1.0)


# ---------------------------------------------------------------------------
# The accuracy gate of an original model with accuracy 0.

def test_an_accuracy_gate_whose_original_scores_zero_is_refused(image_mlp):
  from explicable_jax import mutation
  x = np.random.default_rng(0).random((8, 8, 8, 1)).astype(np.float32)
  preds = np.asarray(image_mlp.logits(x)).argmax(-1)
  wrong = (preds + 1) % 10  # labels that the model gets all wrong
  gate = mutation.accuracy_gate(image_mlp, x, wrong)
  with pytest.raises(ValueError, match=r"accuracy of 0 .*keep every mutant.*labels"):
    mutation.make_mutants(jax.random.key(0), image_mlp, 2, "NAI", 0.1, accuracy_fn=gate,
                          layers="kernels")
  gate = mutation.accuracy_gate(image_mlp, x, preds)  # accuracy 1: gates as before
  _, info = mutation.make_mutants(jax.random.key(0), image_mlp, 2, "GF", 0.01,
                                  accuracy_fn=gate, layers="kernels")
  assert info["original_accuracy"] == 1.0


def test_a_batch_beside_a_classifier_is_that_classifiers_input(image_mlp):
  from explicable_jax import mutation
  x = np.random.default_rng(0).random((4, 8, 8, 1)).astype(np.float32)
  stacked = jax.tree.map(lambda a: a[None], image_mlp.params)
  for call in (lambda v: mutation.label_change_rate(image_mlp, stacked, v),
               lambda v: mutation.mutant_predictions(image_mlp, stacked, v),
               lambda v: mutation.accuracy_gate(image_mlp, v, np.arange(4))):
    with pytest.raises(ConventionError, match=r"^x .*0\.\.255 pixels stored as floats"):
      call(x * 255)
    with pytest.raises(ConventionError, match=r"expects \(H, W, C\) \(8, 8, 1\)"):
      call(np.zeros((4, 32, 32, 3), np.float32))
  u8 = np.round(x * 255).astype(np.uint8)
  np.testing.assert_array_equal(mutation.mutant_predictions(image_mlp, stacked, u8),
                                mutation.mutant_predictions(image_mlp, stacked, u8 / 255.0))
  # A plain function's batch keeps its own scale (the function defines it).
  logits_fn = lambda p, v: image_mlp.with_params(p).logits(v / 255)
  assert mutation.mutant_predictions(logits_fn, stacked, x * 255).shape == (1, 4)


# ---------------------------------------------------------------------------
# Trial 32: conventions that existed but were not declared or not checked.

def test_perturbation_sizes_in_pixel_units_are_refused_everywhere(image_mlp):
  from explicable_jax import attribution, robustness
  from explicable_jax.app.audit.config import AuditConfig
  from explicable_jax.attribution import batched
  x = np.random.default_rng(0).random((3, 8, 8, 1)).astype(np.float32)
  y = np.array([0, 1, 2])
  key = jax.random.key(0)
  with pytest.raises(ConventionError, match=r"^baselines .*\[0, 1\].*got 255"):
    batched.integrated_gradients(image_mlp, x, target=y, baselines=255.0)
  with pytest.raises(ConventionError, match=r"^stdevs .*e\.g\. 0\.1.*25\.5 / 255 = 0\.1"):
    batched.smoothgrad(key, image_mlp, x, target=y, stdevs=25.5)
  score = attribution.class_score_fn(image_mlp.logits, 1)
  with pytest.raises(ConventionError, match=r"^stdevs .*25\.5 / 255"):
    attribution.smoothgrad(key, score, x[0], stdevs=25.5)
  with pytest.raises(ConventionError, match=r"^stdevs must be one number.*\(0\.1, 0\.2\)"):
    attribution.smoothgrad(key, score, x[0], stdevs=(0.1, 0.2))
  with pytest.raises(ConventionError, match=r"^stddev .*25\.0 / 255"):
    robustness.gaussian_noise(key, x, 25.0)
  with pytest.raises(ConventionError, match=r"^noise .*25"):
    AuditConfig(dataset="digits", noise=(25.0,)).validate()
  # The images' units pass, and the results are the same as before.
  ig = batched.integrated_gradients(image_mlp, x, target=y, baselines=0.0, n_steps=8)
  np.testing.assert_allclose(ig, batched.integrated_gradients(image_mlp, x, target=y,
                                                              n_steps=8), rtol=1e-6)
  assert batched.smoothgrad(key, image_mlp, x, target=y, stdevs=0.1).shape == x.shape


def test_input_gradients_check_labels_against_the_logits():
  from explicable_jax import losses
  f = lambda v: v @ jnp.ones((4, 3))
  with pytest.raises(ConventionError, match=r"labels must lie in \[0, 3\).*0 to 12"):
    losses.input_gradients(f, jnp.zeros((2, 4)), classes="true", labels=np.array([0, 12]))
  with pytest.raises(ValueError, match="labels are read only with classes='true'"):
    losses.input_gradients(f, jnp.zeros((2, 4)), classes="max", labels=np.array([0, 1]))


def test_sprt_changes_must_be_a_mask():
  from explicable_jax import mutation
  with pytest.raises(ConventionError, match=r"^label_changes must be boolean.*0, 1, 2, 3, 5"):
    mutation.sprt_detect(np.array([[0, 3, 5], [1, 2, 2]]), 0.05)
  out = mutation.sprt_detect(np.ones((40, 2), np.int32), 0.1)  # 0/1 ints are a mask
  assert out["suspicious"].tolist() == [True, True]


def test_from_nnx_refuses_a_model_ending_in_softmax():
  from flax import nnx

  class Net(nnx.Module):
    def __init__(self, rngs, softmax):
      self.dense, self.softmax = nnx.Linear(4, 3, rngs=rngs), softmax

    def __call__(self, x):
      z = self.dense(x)
      return jax.nn.softmax(z) if self.softmax else z

  with pytest.raises(ConventionError, match="must return logits: drop the final softmax"):
    models.from_nnx(Net(nnx.Rngs(0), True), input_shape=(4,))
  assert models.from_nnx(Net(nnx.Rngs(0), False), input_shape=(4,)).num_classes == 3


@pytest.mark.parametrize("momentum", [2.0, -0.5, 1.0, float("nan")])
def test_momentum_must_lie_in_0_1(momentum):
  from explicable_jax.training.config import TrainConfig, make_optimizer
  with pytest.raises(ValueError, match=r"momentum must be a number in \[0, 1\)"):
    make_optimizer("sgd", lambda step: 0.1, momentum=momentum)
  with pytest.raises(ValueError, match=r"momentum must be a number in \[0, 1\)"):
    TrainConfig(momentum=momentum).validate()
  assert make_optimizer("sgd", lambda step: 0.1, momentum=0.0) is not None


def test_grad_cam_of_an_image_model_needs_a_spatial_layer(image_mlp):
  from explicable_jax.attribution import batched
  x = np.zeros((2, 8, 8, 1), np.float32)
  with pytest.raises(ValueError, match=r"layer 'dense_0' must have spatial maps.*\(2, 8\)"):
    batched.grad_cam(image_mlp, x, layer="dense_0", target=0)
  # the core method names the cut too, from the split's functions; a user's
  # own features function is "the layer"
  from explicable_jax import attribution
  with pytest.raises(ValueError, match=r"^layer 'dense_0' must have spatial maps"):
    attribution.grad_cam(*image_mlp.split("dense_0"), x, target=0)
  features, head = image_mlp.split("dense_0")
  with pytest.raises(ValueError, match=r"^the layer must have spatial maps"):
    attribution.grad_cam(lambda v: features(v), head, x, target=0)


def test_thresholds_p_values_maps_and_flags_are_checked(image_mlp):
  from explicable_jax import detection, stats
  from explicable_jax.attribution import batched
  from explicable_jax.attribution import evaluation as ev
  msp = np.array([0.1, 0.9, 0.3, 0.7])
  wrong = np.array([True, False, True, False])
  with pytest.raises(ConventionError, match=r"^threshold must be a finite number; got nan"):
    detection.score_row(msp, wrong, threshold=float("nan"))
  assert detection.score_row(msp, wrong, threshold=0.5)["threshold"] == 0.5
  with pytest.raises(ConventionError, match=r"^p_value must be a probability in \[0, 1\]"):
    stats.verdict(5.0, 0.1)
  assert stats.verdict(0.01, 0.1) == "detectably higher"
  maps = np.random.default_rng(0).random((3, 4, 4)).astype(np.float32)
  maps[1, 0, 0] = np.nan
  with pytest.raises(ConventionError, match=r"^attributions holds NaN .*indices 1"):
    ev.sparseness(maps)
  with pytest.raises(ConventionError, match=r"^absolute must be True or False; got 'no'"):
    batched.saliency(image_mlp, np.zeros((2, 8, 8, 1), np.float32), target=0, absolute="no")


def test_bfloat16_images_are_numbers_and_a_dataset_is_not_an_array(image_mlp):
  x = np.random.default_rng(0).random((2, 8, 8, 1)).astype(np.float32)
  for dtype in (jnp.bfloat16, jnp.float16):
    low = jnp.asarray(x, dtype)
    np.testing.assert_allclose(image_mlp.logits(low),
                               image_mlp.logits(np.asarray(low.astype(jnp.float32))), rtol=1e-5)
  ds = data.Dataset(x, np.array([0, 1]), 10, tuple("0123456789"))
  with pytest.raises(ConventionError, match=r"^x must be .*got a Dataset: pass ds\.x"):
    training.predict(image_mlp, ds)


CHECKS = {**PUBLIC, **{f"explicable_jax.conventions.{n}": getattr(conventions, n)
                       for n in conventions.__all__ if n.startswith("check_")}}
NAMED_CHECKS = sorted(
    name for name, fn in CHECKS.items()
    if name.rsplit(".", 1)[-1].startswith("check_")
    and next(iter(inspect.signature(fn).parameters), None) == "name")


def test_public_checks_are_found():
  assert {"explicable_jax.conventions.check_images", "explicable_jax.data.check_dataset",
          "explicable_jax.similarity.check_weight_matrix"} <= set(NAMED_CHECKS)


@pytest.mark.parametrize("name", NAMED_CHECKS)
def test_a_check_called_with_its_arguments_swapped_says_so(name):
  """Every public ``check_*(name, value, ...)`` refuses a non-string name,
  so check(value, "name") never prints an array as the argument's name."""
  fn = CHECKS[name]
  args = [np.zeros((2, 3), np.float32), "weights"]
  for p in list(inspect.signature(fn).parameters.values())[2:]:
    if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD,
                                                p.KEYWORD_ONLY):
      args.append(None)
  with pytest.raises(TypeError, match=r"takes the argument's name first.*swapped"):
    fn(*args)


def test_every_key_first_function_names_a_left_out_key():
  """A public function whose first parameter is the PRNG key names a call
  that left the key out (its arguments shifted, so Python blames the last):
  it is a boundary, or wrapped by conventions.key_first (the thirty-second
  trial found make_mutants blaming rate)."""
  key_first = {name: fn for name, fn in PUBLIC.items()
               if next(iter(inspect.signature(fn).parameters), None) == "key"}
  assert len(key_first) >= 20, sorted(key_first)
  bare = sorted(name for name, fn in key_first.items()
                if not hasattr(fn, "__conventions__") and not getattr(fn, "__key_first__", False))
  assert not bare, bare
  from explicable_jax import mutation
  with pytest.raises(TypeError, match=r"the PRNG key comes first, make_mutants\(key, ...\)"):
    mutation.make_mutants(object(), 2, "NAI", 0.05)
