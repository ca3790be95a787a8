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

import json
import warnings
from typing import Any

import jax
import numpy as np

from explicable_jax import _paths

__all__ = ["RUN_FILE", "ResumeMismatchError", "describe_run", "read_run", "write_run",
           "differences", "check_resume"]

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
      "loss": _loss_name(train_step),
      "data": {"name": train_ds.name, "examples": len(train_ds),
               "input_shape": list(train_ds.input_shape),
               "num_classes": int(train_ds.num_classes)},
      "batch_size": int(batch_size),
      "shuffle": bool(shuffle),
      "drop_remainder": bool(drop_remainder),
      "seed": int(seed),
      "run_info": json.loads(json.dumps(run_info or {}, default=str)),
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
                  "instead, and writing a new run record.", stacklevel=3)
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


def differences(recorded: dict, current: dict, *, limit: int = 8) -> list[str]:
  """One line per entry that differs between two run records."""
  a, b = _flat(recorded), _flat(current)
  out = []
  for key in sorted(set(a) | set(b)):
    if a.get(key, "<absent>") != b.get(key, "<absent>"):
      out.append(f"{key}: {a.get(key, '<absent>')!r} in the workdir's run, "
                 f"{b.get(key, '<absent>')!r} now")
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
  if resume == "allow_changes":
    warnings.warn(f"resuming the run in {workdir!s} with changes: {text}.", stacklevel=3)
    return
  raise ResumeMismatchError(
      f"workdir {workdir!s} holds a different run, so it cannot be resumed by this call: "
      f"{text}. Use another workdir for a new run, repeat the original settings, or pass "
      "resume='allow_changes' to continue it with these changes.")
