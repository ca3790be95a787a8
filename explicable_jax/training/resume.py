"""What defines a training run, recorded in its workdir, and the check that a
resume continues the same run.

A run folder holds ``checkpoints/``, ``metrics.jsonl`` and ``run.json``: the
run's identity (model structure and parameter shapes, optimiser-state shapes,
the loss, the data's name, size and shapes, batch size, shuffling, seed, and
whatever the caller adds in ``run_info``, such as the learning rate and the
schedule, which an optax transformation does not reveal). ``fit`` writes it
when a run starts and, on resume, refuses a call whose identity differs,
naming each difference; ``resume="allow_changes"`` continues anyway (with a
warning listing them). The number of epochs may grow between calls (a run
extended epoch by epoch is one run).
"""
from __future__ import annotations

import functools
import hashlib
import json
import warnings
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from explicable_jax import _paths, _validation

__all__ = ["RUN_FILE", "ResumeMismatchError", "describe_run", "read_run", "write_run",
           "differences", "check_resume", "optimizer_fingerprint", "closure_fingerprint",
           "data_digest"]

RUN_FILE = "run.json"
RESUME_MODES = (True, False, "allow_changes")


class ResumeMismatchError(ValueError):
  """A resumed run differs from the one that wrote the workdir."""


def _shapes(tree) -> dict[str, str]:
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  out = {}
  for path, x in leaves:
    dtype = getattr(x, "dtype", type(x).__name__)
    out[jax.tree_util.keystr(path)] = f"{tuple(np.shape(x))} {dtype}"
  return out


def _loss_name(train_step) -> str | None:
  fn = getattr(train_step, "__wrapped__", train_step)
  loss = getattr(fn, "loss_fn", None)
  if loss is None:
    return None
  return getattr(loss, "__qualname__", type(loss).__name__)


def _loss_settings(train_step) -> dict[str, Any] | None:
  """The numbers the loss closes over (label smoothing's alpha, a weight
  matrix's digest), which its name does not tell."""
  loss = getattr(getattr(train_step, "__wrapped__", train_step), "loss_fn", None)
  return None if loss is None else closure_fingerprint(loss)


def _step_settings(train_step) -> dict[str, Any] | None:
  """How :func:`~explicable_jax.training.make_train_step` built the step
  (compute dtype, augmentation), when it did."""
  fn = getattr(train_step, "__wrapped__", train_step)
  if not hasattr(fn, "compute_dtype"):
    return None
  augment = getattr(fn, "augment", None)
  return {"compute_dtype": fn.compute_dtype,
          "augment": None if augment is None else getattr(
              augment, "__qualname__", type(augment).__name__)}


# Steps at which a learning-rate schedule found in an optimiser is sampled.
SCHEDULE_STEPS = (0, 1, 10, 100, 1000, 10000, 100000)
# Closure variables of an optax transformation that hold a schedule (or a
# number) for the step size.
_SCHEDULE_NAMES = ("learning_rate", "step_size_fn", "step_size", "schedule", "lr",
                   "schedule_fn")


def _number(v):
  """``v`` as a JSON number (or bool, str, None) when it is one, else ``...``."""
  if v is None or isinstance(v, (bool, str)):
    return v
  if isinstance(v, (int, float, np.integer, np.floating)):
    return v.item() if isinstance(v, np.generic) else v
  if getattr(v, "shape", None) == () and hasattr(v, "dtype"):
    try:
      return np.asarray(v).item()
    except Exception:  # a tracer or an abstract value: not a fingerprint
      return ...
  return ...


def _sample(fn):
  """A schedule's values at :data:`SCHEDULE_STEPS`, or ``None`` when ``fn``
  is not a function of the step."""
  try:
    with jax.numpy_dtype_promotion("standard"):
      return [float(np.asarray(fn(s))) for s in SCHEDULE_STEPS]
  except Exception:
    return None


def _array_digest(v) -> str | None:
  """A short digest of a concrete array (a loss's class-weight matrix)."""
  if not (hasattr(v, "shape") and hasattr(v, "dtype")) or isinstance(v, jax.core.Tracer):
    return None
  try:
    arr = np.asarray(v)
  except Exception:
    return None
  if arr.dtype == object or arr.size > 2 ** 22:
    return None
  return (f"array{tuple(arr.shape)} {arr.dtype} sha1:"
          f"{hashlib.sha1(np.ascontiguousarray(arr).tobytes()).hexdigest()[:12]}")


def closure_fingerprint(*roots) -> dict[str, Any]:
  """The numbers (and small arrays, by digest) that functions close over,
  found by walking their closures: ``{"factory.variable": value}``, with
  ``i/`` prefixes for the members of a tuple of functions (an optax chain).
  A closed-over function is walked in turn; one held under a step-size name
  (:data:`_SCHEDULE_NAMES`) is sampled at :data:`SCHEDULE_STEPS` instead.
  What a factory's result does (``optax.adam(1e-3)``,
  ``losses.make_label_smoothing_loss(0.1)``) is in its closure; nothing else
  records it."""
  out: dict[str, Any] = {}
  seen: set[int] = set()

  def factory(fn) -> str:
    return getattr(fn, "__qualname__", type(fn).__name__).split(".<locals>")[0]

  def walk(fn, prefix: str, depth: int) -> None:
    if isinstance(fn, functools.partial):
      for i, a in enumerate(fn.args):
        visit(a, f"args[{i}]", prefix, factory(fn.func), depth)
      for k, a in sorted(fn.keywords.items()):
        visit(a, k, prefix, factory(fn.func), depth)
      fn = fn.func
    fn = getattr(fn, "__wrapped__", fn)
    code, cells = getattr(fn, "__code__", None), getattr(fn, "__closure__", None)
    if code is None or not cells or depth > 8 or id(fn) in seen:
      return
    seen.add(id(fn))
    for var, cell in zip(code.co_freevars, cells):
      try:
        v = cell.cell_contents
      except ValueError:  # an empty cell
        continue
      visit(v, var, prefix, factory(fn), depth)

  def visit(v, var: str, prefix: str, owner: str, depth: int) -> None:
    key = f"{prefix}{owner}.{var}"
    number = _number(v)
    if number is not ...:
      out[key] = number
    elif (digest := _array_digest(v)) is not None:
      out[key] = digest
    elif isinstance(v, Mapping):  # inject_hyperparams: name -> value or schedule
      for k, item in sorted(v.items(), key=lambda kv: str(kv[0])):
        visit(item, f"{var}.{k}", prefix, owner, depth)
    elif isinstance(v, (tuple, list)):
      members = [f for f in v if callable(f) and not _is_init(f)]
      for i, f in enumerate(members):
        walk(getattr(f, "update", f), f"{prefix}{i}/" if len(members) > 1 else prefix,
             depth + 1)
    elif callable(v):
      if var.split(".")[-1] in _SCHEDULE_NAMES:
        values = _sample(getattr(v, "schedule_fn", v))  # inject_hyperparams wraps it
        if values is not None:
          out[f"{key}@steps{list(SCHEDULE_STEPS)}"] = values
          return
      if not _is_init(v):
        walk(getattr(v, "update", v), prefix, depth + 1)

  for root in roots:
    walk(root, "", 0)
  return out


def optimizer_fingerprint(optimizer) -> dict[str, Any] | None:
  """What an optax transformation does, as JSON: the hyperparameters its
  update closes over (``b1``, ``eps``, ``decay``, ``step_size``...), keyed by
  the transformation that holds them (``"1/scale.step_size"``: the second
  member of a chain), and every learning-rate schedule sampled at
  :data:`SCHEDULE_STEPS` (:func:`closure_fingerprint`; optax keeps no other
  record); ``None`` for an object that is not a transformation. Two
  optimisers built alike have the same fingerprint; another learning rate,
  schedule or decay changes it.

  Example:
    >>> import optax
    >>> optimizer_fingerprint(optax.sgd(0.1))["1/scale.step_size"]
    -0.1
  """
  update = getattr(optimizer, "update", None)
  if not callable(update) or not callable(getattr(optimizer, "init", None)):
    return None
  # inject_hyperparams keeps its numbers for init.
  return closure_fingerprint(update, optimizer.init)


def _is_init(fn) -> bool:
  name = getattr(fn, "__qualname__", "")
  return name.rsplit(".", 1)[-1] in ("init_fn", "init", "init_empty_state")


def data_digest(ds, *, rows: int = 1024) -> str | None:
  """A digest of a dataset's content: every label and up to ``rows`` inputs
  spread evenly over it (so other data of the same name, size and shape is
  told apart at the cost of hashing ``rows`` examples, not all). Its own
  ``run.json`` section, so that records written before it still resume."""
  try:
    n = len(ds)
    pick = np.unique(np.linspace(0, max(n - 1, 0), min(n, rows)).astype(np.int64))
    h = hashlib.sha1()
    for part in (ds.x[pick], ds.y):
      _hash_array(h, part)
    return f"sha1:{h.hexdigest()[:16]} ({len(pick)} inputs, all labels)"
  except Exception:  # an input pipeline without random access: not recorded
    return None


def _hash_array(h, value) -> None:
  """Feeds one array (its shape, dtype and bytes) to the hash ``h``."""
  arr = np.asarray(value)
  h.update(str((arr.shape, str(arr.dtype))).encode())
  h.update(np.ascontiguousarray(arr).tobytes())


def tree_digest(tree) -> str | None:
  """A digest of the values of a pytree of arrays (a model's initial
  weights, a PRNG key), or ``None`` when they cannot be read on this host
  (arrays sharded over processes)."""
  try:
    h = hashlib.sha1()
    for leaf in jax.tree.leaves(tree):
      if isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        leaf = jax.random.key_data(leaf)
      _hash_array(h, leaf)
    return "sha1:" + h.hexdigest()[:16]
  except Exception:  # noqa: BLE001 - not addressable here: not recorded
    return None


def _initial_state(state) -> dict[str, str | None]:
  """What a fresh run starts from: its initial weights and training key
  (a resume from another initialisation, or another key, is another run).
  ``None`` for a state past step 0 (a run continued from its returned
  state: the checkpoint, not the start, is what it continues)."""
  try:
    fresh = int(np.asarray(state.step)) == 0
  except Exception:  # noqa: BLE001 - a sharded step: not recorded
    fresh = False
  if not fresh:
    return {"params": None, "model_state": None, "key": None}
  return {"params": tree_digest(state.params), "model_state": tree_digest(state.model_state),
          "key": tree_digest(getattr(state, "key", None))}


def describe_run(state, train_ds, *, batch_size: int, shuffle: bool,
                 drop_remainder: bool, seed: int, train_step=None,
                 run_info: dict | None = None) -> dict[str, Any]:
  """The identity of a run, as JSON: what must not change when it resumes."""
  spec = state.spec
  return {
      "model": {
          "backend": spec.backend.describe(),
          "recipe": json.loads(spec.recipe) if spec.recipe else None,
          "params": _shapes(state.params),
          "model_state": _shapes(state.model_state),
      },
      "optimizer_state": _shapes(state.opt_state),
      "optimizer": optimizer_fingerprint(
          getattr(getattr(train_step, "__wrapped__", train_step), "optimizer", None)),
      "loss": _loss_name(train_step),
      "loss_settings": _loss_settings(train_step),
      "train_step": _step_settings(train_step),
      "data": {"name": train_ds.name, "examples": len(train_ds),
               "input_shape": list(train_ds.input_shape),
               "num_classes": int(train_ds.num_classes)},
      "data_content": data_digest(train_ds),
      "batch_size": int(batch_size),
      "shuffle": bool(shuffle),
      "drop_remainder": bool(drop_remainder),
      "seed": int(seed),
      "run_info": json.loads(json.dumps(run_info or {}, default=str)),
      "initial_state": _initial_state(state),
  }


def read_run(workdir) -> dict | None:
  """The ``run.json`` of a workdir, or ``None`` when it has none."""
  path = _paths.resolve(workdir) / RUN_FILE
  if not path.exists():
    return None
  try:
    record = json.loads(path.read_text())
  except (json.JSONDecodeError, UnicodeDecodeError):
    record = None
  if not isinstance(record, dict):
    # A damaged record (a kill while writing): the resume falls back to
    # checking the checkpoint's shapes, and a new record is written.
    warnings.warn(f"{path!s} is damaged; resuming with the checkpoint's shapes checked "
                  "instead, and writing a new run record.", stacklevel=_validation.user_stacklevel())
    return None
  return record


def write_run(workdir, record: dict) -> None:
  _paths.write_text(_paths.resolve(workdir) / RUN_FILE, json.dumps(record, indent=1))


def _flat(record: dict, prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in record.items():
    key = f"{prefix}{k}"
    if isinstance(v, dict) and v and k not in ("backend", "recipe"):
      out.update(_flat(v, key + "."))
    else:
      out[key] = v
  return out


_INITIAL = {
    "initial_state.params": "initial weights (initial_state.params: another initialisation or "
                            "pretrained start?)",
    "initial_state.model_state": "initial model state (initial_state.model_state)",
    "initial_state.key": "training key (initial_state.key: create_train_state's key)",
}


def differences(recorded: dict, current: dict, *, limit: int = 12,
                per_section: int = 3) -> list[str]:
  """One line per entry that differs between two run records, at most
  ``per_section`` per top-level section (``model``, ``optimizer``...) and
  ``limit`` in all, so that every differing section is named. A section
  that the recorded run does not have at all (a record written before the
  library recorded it, such as ``optimizer``) is not compared."""
  a, b = _flat(recorded), _flat(current)
  by_section: dict[str, list[str]] = {}
  for key in sorted(set(a) | set(b)):
    section = key.split(".", 1)[0]
    if section not in recorded:
      continue
    if section == "initial_state" and (a.get(key) is None or b.get(key) is None):
      continue  # not recorded (sharded, or a state past step 0) on one side
    if a.get(key, "<absent>") != b.get(key, "<absent>"):
      what = ("learning-rate schedule (" + key + ")" if "step_size_fn" in key
              or "learning_rate" in key else
              _INITIAL.get(key, key))
      by_section.setdefault(section, []).append(
          f"{what}: {a.get(key, '<absent>')!r} in the workdir's run, "
          f"{b.get(key, '<absent>')!r} now")
  out = []
  for section, lines in by_section.items():
    out += lines[:per_section]
    if len(lines) > per_section:
      out.append(f"... and {len(lines) - per_section} more {section} entries")
  if len(out) > limit:
    out = out[:limit] + [f"... and {len(out) - limit} more"]
  return out


def check_resume(workdir, recorded: dict, current: dict, resume) -> None:
  """Raises :class:`ResumeMismatchError` when ``current`` differs from the
  ``recorded`` run (``resume=True``); warns with the list under
  ``resume="allow_changes"``."""
  diff = differences(recorded, current)
  if not diff:
    return
  text = "; ".join(diff)
  if any(line.startswith("learning-rate schedule") for line in diff):
    text += (" (the learning-rate schedule is sampled over the run's steps: a decaying "
             "schedule is set by the learning rate, the warmup and the number of epochs, so "
             "more epochs (--epochs / epochs=) or another --lr make it another run)")
  if resume == "allow_changes":
    warnings.warn(f"resuming the run in {workdir!s} with changes: {text}.", stacklevel=_validation.user_stacklevel())
    return
  raise ResumeMismatchError(
      f"workdir {workdir!s} holds a different run, so it cannot be resumed by this call: "
      f"{text}. Use another workdir for a new run, repeat the original settings, or pass "
      "resume='allow_changes' to continue it with these changes.")
