"""Right for the Right Reasons: explanations from input gradients and
find-another-explanation (Ross, Hughes and Doshi-Velez, IJCAI 2017, sec. 4).

The penalty and the training losses live in :mod:`explicable_jax.losses`
(:func:`~explicable_jax.losses.input_gradient_penalty`,
:func:`~explicable_jax.losses.make_rrr_loss`); the data sets with their
annotations in :mod:`explicable_jax.data.rrr`.
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import jax
import numpy as np
import optax
from jax.typing import ArrayLike

from explicable_jax import conventions
from explicable_jax import _batching, _validation, data, losses, models, training
from explicable_jax.data import Dataset
from explicable_jax.data.rrr import explanation_mask

__all__ = ["explanation_mask", "model_input_gradients", "find_another_explanation",
           "FoundModel"]


@functools.partial(jax.jit, static_argnames=("options",))
def _input_gradients_batch(clf, xb, yb, *, options):
  opts = dict(options)
  return losses.input_gradients(clf.logits, training.to_float(xb),
                                labels=yb if opts.get("classes") == "true" else None, **opts)


@conventions.boundary(x="inputs")
def model_input_gradients(model: Any, x: ArrayLike, *,
                          batch_size: int = 1000, **options) -> np.ndarray:
  """:func:`explicable_jax.losses.input_gradients` of a model (evaluation
  mode) for every row of ``x``, in batches.

  ``model``: a :class:`~explicable_jax.models.Classifier` or a
  :class:`~explicable_jax.training.TrainState`. ``options``: ``scale`` and
  ``classes`` (default ``log`` and ``sum``, the quantities the penalty
  constrains); ``classes="true"`` takes ``labels``.
  """
  clf = models.as_classifier("model", model)
  labels = options.pop("labels", None)
  x = np.asarray(x)
  _validation.check_options("model_input_gradients", options,
                            ("scale", "classes", "labels", "batch_size"))
  losses._check_gradient_classes(options.get("classes", "sum"), labels)
  if labels is None:
    y = np.zeros(len(x), np.int32)
  else:  # the class count from one row's logits: an adapter may not declare it
    y = conventions.check_labels("labels", labels, int(clf.logits(x[:1]).shape[-1]), n=len(x))
  opts = tuple(sorted(options.items()))
  if labels is None:
    return _batching.map_batches(
        lambda c, xb: _input_gradients_batch(c, xb, None, options=opts), [x],
        batch_size=batch_size, args=(clf,))
  return _batching.map_batches(
      lambda c, xb, yb: _input_gradients_batch(c, xb, yb, options=opts), [x, y],
      batch_size=batch_size, args=(clf,))


@dataclasses.dataclass
class FoundModel:
  """One model of a find-another-explanation sequence."""
  state: training.TrainState
  annotation: np.ndarray   # what it was penalised on (union of earlier masks)
  mask: np.ndarray         # its own explanation mask on the training inputs
  train_accuracy: float
  eval_accuracy: float | None
  lam: float = 0.0         # its penalty weight


@conventions.boundary(initial_annotation="mask")
def find_another_explanation(key: jax.Array, train: Dataset, *, n_models: int,
                             make_model: Callable[[jax.Array], Any],
                             optimizer: optax.GradientTransformation,
                             lam: float | Sequence[float] = 1000.0,
                             epochs: int = 10, batch_size: int = 256, cutoff: float = 0.67,
                             eval_ds: Dataset | None = None,
                             initial_annotation: ArrayLike | None = None,
                             progress: bool = False, mask_scale: str | None = None,
                             mask_classes: str | None = None,
                             fit_options: Mapping[str, Any] | None = None,
                             **loss_options) -> list[FoundModel]:
  """Trains ``n_models`` models in turn, each penalised (``lam``, RRR loss)
  on the union of the explanation masks of all earlier ones, so that each
  must find a different reason for its predictions:

  .. math:: A_0 = A_{\\text{init}},\\quad
            \\theta_k = \\arg\\min \\mathcal L_{RRR}(\\theta; A_k, \\lambda_k),\\quad
            A_{k+1} = A_k \\lor M_{c}\\big(\\nabla_x f_{\\theta_k}\\big)

  where :math:`M_c` keeps the features whose |gradient| exceeds ``cutoff``
  times the example's largest. Model 0 is trained on ``A_0`` (nothing
  annotated by default: the plain model). Ross et al.'s Toy Colors chain
  (``dtak/rrr``, ``experiments/Toy Colors.ipynb``) is
  ``n_models=3, lam=(0, 1e3, 1e6)``, with masks from the gradient of the
  largest probability (``mask_scale="linear", mask_classes="max"``, their
  ``largest_gradient_mask``) on raw 0-255 pixels.

  Its parameters are the settings of Ross et al.'s procedure (number of models, penalty weight,
  epochs, batch size, mask cutoff), one keyword each, all keyword-only after the data; other
  training settings go in ``fit_options`` (:class:`~explicable_jax.training.FitConfig`'s fields)
  and loss options in ``**loss_options``.

  Args:
    key: PRNG key; model ``k`` uses ``fold_in(key, k)`` for weights, order
      and dropout.
    train: training data (its ``extras["annotation"]`` is ignored; use
      ``initial_annotation``).
    n_models: how many models.
    make_model: ``key -> nnx model``.
    optimizer: optax transformation shared by all models.
    lam: penalty weight, one for all models or a sequence of ``n_models``
      (``lam[k]`` for model ``k``).
    epochs, batch_size: training of each model.
    cutoff: explanation threshold, a fraction of each example's largest
      |gradient| (0.67 as the original).
    eval_ds: data to report accuracy on.
    initial_annotation: ``A_0`` (default: nothing annotated).
    mask_scale, mask_classes: the function whose input gradient makes the
      masks (:func:`explicable_jax.losses.input_gradients`); default: the
      penalty's own (``scale`` / ``classes`` of ``loss_options``, ``log`` /
      ``sum``).
    fit_options: more keywords for :func:`explicable_jax.training.fit`
      (``shuffle``, ``drop_remainder``).
    **loss_options: ``scale``, ``classes``, ``normalize``, ``l2`` of
      :func:`explicable_jax.losses.make_rrr_loss`.

  Returns:
    One :class:`FoundModel` per model.
  """
  key = _validation.check_key("key", key, call="find_another_explanation(key, ...)")
  data.check_dataset("train", train)
  if conventions.classifier_of(make_model) is not None or not callable(make_model):
    raise TypeError(
        f"make_model must be a factory key -> a fresh model (each of the n_models is trained "
        f"from scratch), e.g. lambda k: models.classifier(k, 'mlp', ...); got "
        f"{type(make_model).__name__}.")
  _validation.check_signature("make_model", make_model, 1, "key -> a fresh model")
  _validation.check_positive("n_models", n_models, integer=True)
  _validation.check_options("find_another_explanation", loss_options, losses.make_rrr_loss,
                            exclude=("lam",), passed_to="losses.make_rrr_loss")
  lams: list[Any] = [lam] * n_models if np.ndim(lam) == 0 else list(cast(Sequence[float], lam))
  if len(lams) != n_models:
    raise ValueError(f"lam must be one number or a sequence of n_models={n_models} numbers; "
                     f"got {len(lams)}: {lam!r}.")
  for i, l in enumerate(lams):
    _validation.check_nonnegative(f"lam[{i}]" if np.ndim(lam) else "lam", l)
  _validation.check_fraction("cutoff", cutoff)
  mask_scale = loss_options.get("scale", "log") if mask_scale is None else mask_scale
  mask_classes = loss_options.get("classes", "sum") if mask_classes is None else mask_classes
  _validation.check_choice("mask_scale", mask_scale, losses.GRADIENT_SCALES)
  _validation.check_choice("mask_classes", mask_classes, losses.GRADIENT_CLASSES)
  annotation = (np.zeros(train.x.shape, bool) if initial_annotation is None
                else np.asarray(initial_annotation, bool))
  if annotation.shape != train.x.shape:
    raise ValueError(f"initial_annotation must have the inputs' shape {train.x.shape}; "
                     f"got {annotation.shape}.")
  clash = sorted(set(fit_options or {}) & {"epochs", "batch_size", "seed", "progress",
                                            "train_step", "config", "eval_ds"})
  if clash:
    raise ValueError(
        f"fit_options may not set {', '.join(clash)}: find_another_explanation sets "
        f"{'it' if len(clash) == 1 else 'them'} itself (pass epochs=, batch_size=, progress= "
        "as its own arguments; each model's seed comes from key).")
  found = []
  for k in range(n_models):
    kk = jax.random.fold_in(key, k)
    loss_fn = losses.make_rrr_loss(float(lams[k]), **loss_options)
    step = training.make_train_step(loss_fn, optimizer)
    ds = dataclasses.replace(train, extras={**train.extras,
                                            "annotation": annotation.astype(np.float32)})
    state = training.create_train_state(jax.random.fold_in(kk, 1),
                                        make_model(jax.random.fold_in(kk, 0)), optimizer)
    shuffled = (fit_options or {}).get("shuffle", True)  # a seed is read only to shuffle
    seed: dict[str, Any] = (
        {"seed": int(jax.random.randint(kk, (), 0, 2**31 - 1))} if shuffled else {})
    state, _ = training.fit(state, ds, train_step=step, epochs=epochs, batch_size=batch_size,
                         progress=progress, **seed, **(fit_options or {}))
    grads = model_input_gradients(state, train.x, scale=mask_scale, classes=mask_classes,
                                  **({"labels": train.y} if mask_classes == "true" else {}))
    mask = explanation_mask(grads, cutoff)
    if not mask.any():
      raise ValueError(
          f"model {k}'s explanation mask is empty (all its input gradients are zero), "
          "so there is nothing new to penalise; lower lam or check the model.")
    found.append(FoundModel(
        state=state, annotation=annotation.copy(), mask=mask,
        train_accuracy=training.evaluate(state, train)["accuracy"],
        eval_accuracy=None if eval_ds is None else training.evaluate(state, eval_ds)["accuracy"],
        lam=float(lams[k])))
    annotation = annotation | mask
  return found


def mlp_factory(input_shape: Sequence[int], num_classes: int,
                hidden: Sequence[int] = (50, 30)) -> Callable[[jax.Array], Any]:
  """``key -> MLP`` of the original experiments (50-30 ReLU by default)."""
  input_shape = conventions.check_input_shape("input_shape", input_shape)
  _validation.check_num_classes("num_classes", num_classes)
  if isinstance(hidden, (str, bytes)) or np.ndim(hidden) != 1:
    raise TypeError(f"hidden must be a sequence of layer widths, e.g. (50, 30); got {hidden!r}.")
  for i, h in enumerate(hidden):
    _validation.check_positive(f"hidden[{i}]", h, integer=True)
  return lambda key: models.create_model(key, "mlp", input_shape=tuple(input_shape),
                                         num_classes=num_classes, hidden=hidden)
