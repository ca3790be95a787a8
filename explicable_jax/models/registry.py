"""The model registry: the zoo's builders and the ones users register."""
from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx

from explicable_jax import _validation, conventions
from explicable_jax.models.adapters import from_nnx
from explicable_jax.models.classifier import Classifier
from explicable_jax.models.cnn import SmallCNN
from explicable_jax.models.mlp import MLP
from explicable_jax.models.resnet import CifarResNet, PreActResNetV2
from explicable_jax.models.vgg import VGG16BN

__all__ = [
    "MODELS", "classifier", "create_model", "register_model",
]


def _image_kwargs(input_shape, kwargs):
  _validation.check_rank("input_shape", tuple(input_shape), (3,))
  kwargs.setdefault("in_channels", input_shape[-1])
  if input_shape[-1] != 3:  # CIFAR statistics only make sense for RGB.
    kwargs.setdefault("input_mean", None)
    kwargs.setdefault("input_std", None)
  return kwargs


def _mlp(input_shape, num_classes, rngs, hidden=(50, 30), **kw):
  return MLP(int(np.prod(input_shape)), hidden, num_classes, rngs=rngs, **kw)


def _cnn(input_shape, num_classes, rngs, **kw):
  _validation.check_rank("input_shape", tuple(input_shape), (3,))
  if kw.get("pool") == "flatten":
    kw.setdefault("spatial", tuple(input_shape[:2]))
  return SmallCNN(input_shape[-1], num_classes, rngs=rngs, **kw)


def _resnet20(input_shape, num_classes, rngs, **kw):
  return CifarResNet(20, num_classes, rngs=rngs, **_image_kwargs(input_shape, kw))


def _resnet(input_shape, num_classes, rngs, depth=20, **kw):
  return CifarResNet(depth, num_classes, rngs=rngs, **_image_kwargs(input_shape, kw))


def _resnet_v2(input_shape, num_classes, rngs, depth=29, **kw):
  return PreActResNetV2(depth, num_classes, rngs=rngs, **_image_kwargs(input_shape, kw))


def _vgg16_bn(input_shape, num_classes, rngs, **kw):
  _validation.check_rank("input_shape", tuple(input_shape), (3,))
  if min(input_shape[:2]) < 32:
    raise ValueError(f"vgg16_bn needs images of at least 32x32 (five 2x2 poolings); got "
                     f"input_shape={tuple(input_shape)}: use 'cnn' or a ResNet for smaller "
                     "images.")
  return VGG16BN(num_classes, rngs=rngs, **_image_kwargs(input_shape, kw))


MODELS: dict[str, Callable[..., Any]] = {
    "mlp": _mlp,
    "cnn": _cnn,
    "resnet20": _resnet20,
    "resnet": _resnet,
    "resnet_v2": _resnet_v2,
    "resnet29_v2": _resnet_v2,
    "vgg16_bn": _vgg16_bn,
}


@conventions.key_first
def create_model(key: jax.Array, name: str, *, input_shape: Sequence[int],
                 num_classes: int, **kwargs: Any) -> nnx.Module | Classifier:
  """Builds a model of the registry (the zoo or :func:`register_model`) by name.

  ``create_model(key, "cnn", input_shape=(32, 32, 3), num_classes=10)``: the
  PRNG key first, as everywhere in the library.

  Args:
    name: one of :data:`MODELS` (``mlp``, ``cnn``, ``resnet20``, ``resnet``,
      ``resnet_v2``, ``resnet29_v2``, ``vgg16_bn``).
    input_shape: shape of one example, e.g. ``(32, 32, 3)``.
    num_classes: number of classes.
    key: PRNG key for the initial weights.
    **kwargs: passed to the model's constructor (``hidden=(50, 30)``,
      ``depth=29``, ``dropout_rate=0.5``, ...).

  Returns:
    The live NNX module (or the Classifier a registered builder returns).
  """
  key = _validation.check_key("key", key, call="create_model(key, name, input_shape=..., "
                                                "num_classes=...)")
  builder = _validation.lookup("model", name, MODELS)
  _validation.check_num_classes("num_classes", num_classes)
  input_shape = conventions.check_input_shape("input_shape", input_shape)
  if len(input_shape) >= 2 and input_shape[0] == 1:
    raise ValueError(
        f"input_shape is one example's shape, without the batch axis; got {input_shape}: "
        f"pass {input_shape[1:]}.")
  _check_options(name, builder, kwargs)
  for stat in ("input_mean", "input_std"):
    value = kwargs.get(stat)
    if value is None:
      continue
    if isinstance(value, (str, bytes)) or np.ndim(value) == 0:
      raise ValueError(f"{stat} must be a sequence with one value per channel, e.g. (0.5,) "
                       f"for one channel; got {value!r}.")
    v = np.asarray(value, dtype=float).ravel()
    if len(input_shape) == 3 and v.size not in (1, input_shape[-1]):
      raise ValueError(f"{stat} must hold one value per channel ({input_shape[-1]} for "
                       f"input_shape={input_shape}); got {len(v)}.")
    if not np.isfinite(v).all() or (stat == "input_std" and not (v > 0).all()):
      raise ValueError(f"{stat} must be finite{' and positive' if stat == 'input_std' else ''}"
                       f"; got {tuple(v.tolist())}.")
    if len(input_shape) == 3 and (v.max() > 1 or v.min() < 0):
      # The zoo models take [0, 1] images: statistics of 0..255 pixels would
      # standardise every input to about -mean/std.
      raise ValueError(
          f"{stat} must be on the images' [0, 1] scale (the models take [0, 1] images and "
          f"standardise them inside); got {tuple(v.tolist())}"
          + (": 0..255 statistics? divide them by 255" if v.max() > 1 else "") + ".")
  try:
    model = builder(tuple(input_shape), int(num_classes), nnx.Rngs(params=key), **kwargs)
  except TypeError as e:
    import re
    m = re.search(r"unexpected keyword argument '(\w+)'", str(e))
    if m and m.group(1) in kwargs:
      raise ValueError(f"model {name!r} does not take the option {m.group(1)!r} "
                       f"({e}).") from None
    m = re.search(r"multiple values for (?:keyword )?argument '(\w+)'", str(e))
    if m and m.group(1) in kwargs:
      family = [n for n in MODELS if n != name and name.startswith(n)]
      raise ValueError(
          f"model {name!r} sets its {m.group(1)!r} itself, so it cannot be given as an "
          "option" + (f"; model {family[0]!r} takes {m.group(1)}=" if family else "")
          + ".") from None
    raise
  if not isinstance(model, (nnx.Module, Classifier)):
    raise TypeError(
        f"model {name!r}'s builder must return an nnx.Module or a models.Classifier; it "
        f"returned {type(model).__name__} (a missing return statement?). See "
        "register_model for the builder's form.")
  stats = {s: getattr(model, s, None) for s in ("input_mean", "input_std")}
  if (stats["input_mean"] is None) != (stats["input_std"] is None):
    have, lack = (("input_mean", "input_std") if stats["input_std"] is None
                  else ("input_std", "input_mean"))
    raise ValueError(f"{have} needs {lack} too (the model standardises its inputs as "
                     f"(x - input_mean) / input_std): pass both, one value per channel.")
  return model


def _check_options(name: str, builder, kwargs) -> None:
  """Raises naming an option the model's builder (or, for a class, its
  constructor) does not take, and the ones it does."""
  target = builder.__init__ if inspect.isclass(builder) else builder
  _validation.check_options(f"model {name!r}", kwargs, target, error=ValueError,
                            exclude=("self", "input_shape", "num_classes", "rngs"))




@conventions.boundary()
def register_model(name: str, builder: Callable[..., Any], *,
                   overwrite: bool = False) -> None:
  """Adds ``builder`` to :data:`MODELS` under ``name``.

  ``builder(input_shape, num_classes, rngs, **kwargs)`` (``rngs`` an
  ``nnx.Rngs`` with one stream, ``params``) returns an
  ``nnx.Module`` (adapted with :func:`~explicable_jax.models.from_nnx`; a
  :class:`StagedModel` brings its split points) or a
  :class:`~explicable_jax.models.Classifier`. Registered models can be
  trained from a config or the CLI, saved and loaded by name.

  Raises:
    ValueError: ``name`` is taken (pass ``overwrite=True`` to replace it).
  """
  if callable(builder) and not inspect.isclass(builder):
    _validation.check_signature("builder", builder, 3, "builder(input_shape, num_classes, "
                                "rngs, **options) -> nnx.Module or models.Classifier")
  _validation.register("model", MODELS, name, builder, arg="builder", overwrite=overwrite)


@conventions.key_first
def classifier(key: jax.Array, name: str, *, input_shape: Sequence[int], num_classes: int,
               class_names: Sequence[str] | None = None, **kwargs: Any) -> Classifier:
  """A registered model as a :class:`~explicable_jax.models.Classifier` that
  :func:`~explicable_jax.models.save` can rebuild by name.

  Args:
    key: PRNG key for the initial weights.
    name: a registered model name (:data:`MODELS`, or one added with
      :func:`register_model`).
    input_shape: one example's shape, e.g. ``(64,)`` or ``(32, 32, 3)``.
    num_classes: number of outputs.
    class_names: optional names of the classes, in output order.
    **kwargs: the model's own options (see :func:`create_model`).

  Returns:
    A :class:`~explicable_jax.models.Classifier` whose recipe records
    ``name``, ``kwargs``, ``input_shape`` and ``num_classes``.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from explicable_jax import models
    >>> clf = models.classifier(jax.random.key(0), "mlp", input_shape=(64,), num_classes=10)
    >>> clf.logits(jnp.zeros((2, 64))).shape
    (2, 10)
  """
  built = create_model(key, name, input_shape=input_shape, num_classes=num_classes, **kwargs)
  recipe = json.dumps({"model": name, "model_kwargs": kwargs,
                       "input_shape": [int(d) for d in input_shape],
                       "num_classes": int(num_classes)}, sort_keys=True)
  if isinstance(built, Classifier):
    import dataclasses
    spec = dataclasses.replace(
        built.spec, recipe=recipe, input_shape=built.input_shape or tuple(input_shape),
        num_classes=int(num_classes),
        class_names=tuple(class_names) if class_names is not None else built.class_names)
    return Classifier(built.params, built.state, spec)
  return from_nnx(built, class_names=class_names, input_shape=input_shape,
                  num_classes=int(num_classes), recipe=recipe)
