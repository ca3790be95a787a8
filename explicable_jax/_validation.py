"""Argument checks shared by the public API.

Every check raises an error whose message names the argument, what was given
and what was expected, in one sentence.
"""
from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

__all__ = [
    "accepts_keyword", "check_choice", "check_fraction", "check_key", "check_labels",
    "check_class_names", "check_names", "check_nonnegative", "check_positive", "check_rank",
    "check_seed", "check_signature", "lookup", "register",
]


def _category(v: Any) -> Any:
  """What a choice is matched as: bools, ints, floats and strings apart."""
  if isinstance(v, (bool, np.bool_)):
    return bool
  if isinstance(v, (int, np.integer)):
    return int
  if isinstance(v, (float, np.floating)):
    return float
  if isinstance(v, str):
    return str
  return type(v)


def check_choice(name: str, value: Any, valid: Iterable[Any]) -> None:
  """Raises ``ValueError`` unless ``value`` is one of ``valid``."""
  valid = list(valid)
  if hasattr(value, "shape") and getattr(value, "ndim", 0) > 0:  # an array where a name goes
    raise ValueError(f"{name} must be one of {', '.join(repr(v) for v in valid)}; got an "
                     f"array of shape {tuple(value.shape)} (arguments swapped?).")
  # 2.0 == 2 and True == 1: a choice among ints or strings is matched by type too.
  same_type = any(_category(value) == _category(v) for v in valid)
  if value not in valid or not same_type:
    raise ValueError(
        f"{name} must be one of {', '.join(repr(v) for v in valid)}; "
        f"got {value!r}."
    )


def check_names(name: str, value: Any, *, of: str = "names") -> tuple:
  """``value`` as a tuple of names: a list or tuple, not one string (which
  would be read letter by letter: ``names='msp'`` as ``'m', 's', 'p'``).
  ``of`` says what the entries are (``"severities"``, say).

  Raises ``TypeError`` naming the argument, with the fix.
  """
  if isinstance(value, (str, bytes)):
    raise TypeError(f"{name} must be a sequence of {of}, not one string; got {value!r}: "
                    f"wrap it in a list, [{value!r}].")
  try:
    return tuple(value)
  except TypeError:
    raise TypeError(f"{name} must be a sequence of {of}; got {type(value).__name__}"
                    + (f" (one value? wrap it in a list, [{value!r}])"
                       if np.isscalar(value) else "") + ".") from None


def check_class_names(name: str, value: Any) -> tuple:
  """Class names: a sequence of names (:func:`check_names`), all different
  (two classes of one name would be one class to every similarity)."""
  names = check_names(name, value)
  seen: dict[str, int] = {}
  for i, c in enumerate(names):
    if not isinstance(c, str):
      raise TypeError(
          f"{name} must be strings, one name per class; got {type(c).__name__} {c!r} at "
          f"position {i} (class indices? pass names, e.g. tuple(map(str, ...))).")
    if str(c) in seen:
      raise ValueError(f"{name} must be distinct; got {str(c)!r} at positions {seen[str(c)]} "
                       f"and {i} of {list(names)}.")
    seen[str(c)] = i
  return names


def lookup(name: str, value: str, registry: Mapping[str, Any]) -> Any:
  """Returns ``registry[value]``, or raises a ``ValueError`` listing the keys."""
  if value not in registry:
    plural = name + ("es" if name.endswith("s") else "s")
    raise ValueError(
        f"Unknown {name} {value!r}; valid {plural} are: "
        f"{', '.join(sorted(registry))}."
    )
  return registry[value]


def check_concrete(name: str, value: Any) -> None:
  """Refuses a traced value where a concrete number is read on the host (a
  size, a step count, a budget): inside ``jax.jit`` it has no value to
  check or to branch on."""
  if "Tracer" in type(value).__name__:
    raise TypeError(
        f"{name} must be a concrete number (a Python int or float); got a traced value "
        f"({type(value).__name__}): pass it from outside jax.jit (close over it, or mark it "
        "static with static_argnames).")


def _check_number(name: str, value: Any, *, integer: bool, strict: bool) -> None:
  check_concrete(name, value)
  sign = "positive" if strict else "non-negative"
  kind = f"a {sign} {'integer' if integer else 'number'}"
  ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
      value, bool)
  whole_float = False
  if ok and integer:
    # A whole float (32.0) is refused too: it would pass here and then fail
    # inside range() or a shape, far from the argument.
    whole_float = not isinstance(value, (int, np.integer)) and float(value).is_integer()
    ok = isinstance(value, (int, np.integer))
  if not ok or not np.isfinite(value) or value < 0 or (strict and value == 0):
    hint = f" (an int: pass {int(value)})" if whole_float else ""
    raise ValueError(f"{name} must be {kind}; got {value!r}{hint}.")


def check_positive(name: str, value: Any, *, integer: bool = False) -> None:
  """Raises ``ValueError`` unless ``value`` is a finite number > 0."""
  _check_number(name, value, integer=integer, strict=True)


def check_nonnegative(name: str, value: Any, *, integer: bool = False) -> None:
  """Raises ``ValueError`` unless ``value`` is a finite number >= 0."""
  _check_number(name, value, integer=integer, strict=False)


def check_seed(name: str, value: Any) -> None:
  """Raises ``ValueError`` unless ``value`` is a random seed: an integer >= 0
  (what ``np.random.default_rng`` and ``jax.random.key`` take), not a bool or
  a string."""
  check_concrete(name, value)
  if (not isinstance(value, (int, np.integer)) or isinstance(value, bool)
      or value < 0):
    raise ValueError(f"{name} must be a non-negative integer; got {value!r}.")


def check_num_classes(name: str, value: Any, *,
                      why: str = "a classifier tells at least 2 classes apart") -> int:
  """A number of classes: an integer of at least 2 (one class is no
  classification: its cross-entropy is 0 and its argmax constant)."""
  check_positive(name, value, integer=True)
  if value < 2:
    raise ValueError(f"{name} must be at least 2 ({why}); got {value}.")
  return int(value)


def check_fraction(name: str, value: Any, *, closed: bool = True,
                   positive: bool = False) -> None:
  """Raises ``ValueError`` unless ``0 <= value <= 1`` (``0 < value < 1`` when
  not ``closed``; ``0 < value <= 1`` when ``positive``, a rate that must
  change something)."""
  check_concrete(name, value)
  ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
      value, bool) and np.isfinite(value)
  if ok:
    ok = (0 < value <= 1 if positive else 0 <= value <= 1) if closed else 0 < value < 1
  interval = ("(0, 1]" if positive else "[0, 1]") if closed else "(0, 1)"
  if not ok:
    raise ValueError(f"{name} must be a number in {interval}; got {value!r}.")


def check_labels(name: str, labels: Any, num_classes: int) -> None:
  """Raises ``ValueError`` unless integer ``labels`` lie in ``[0, num_classes)``.

  Only concrete (non-traced) arrays are checked; inside ``jit`` the caller is
  expected to have validated the data on the host.
  """
  try:
    arr = np.asarray(labels)
  except Exception:  # A tracer: nothing to check on the host.
    return
  if arr.size == 0:
    return
  if not np.issubdtype(arr.dtype, np.integer):
    raise ValueError(
        f"{name} must hold integer class indices; got dtype {arr.dtype}.")
  lo, hi = int(arr.min()), int(arr.max())
  if lo < 0 or hi >= num_classes:
    raise ValueError(
        f"{name} must lie in [0, {num_classes}) for {num_classes} classes; "
        f"got values from {lo} to {hi}.")


def check_rank(name: str, shape: tuple[int, ...], ranks: Iterable[int]) -> None:
  """Raises ``ValueError`` unless ``len(shape)`` is one of ``ranks``."""
  ranks = tuple(ranks)
  if len(shape) not in ranks:
    want = " or ".join(str(r) for r in ranks)
    raise ValueError(
        f"{name} must have rank {want}; got shape {tuple(shape)}.")


def check_size(name: str, size: Any) -> tuple[int, int]:
  """An image size ``(height, width)`` of two positive integers."""
  ok = (not isinstance(size, (str, bytes)) and np.ndim(size) == 1 and len(tuple(size)) == 2
        and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0
                for s in tuple(size)))
  if not ok:
    raise ValueError(f"{name} must be (height, width), two positive integers; got {size!r}.")
  return int(size[0]), int(size[1])


def accepts_keyword(fn: Callable, name: str) -> bool:
  """Whether ``fn`` takes a keyword argument ``name`` (or ``**kwargs``)."""
  try:
    params = inspect.signature(fn).parameters
  except (TypeError, ValueError):
    return False
  return name in params or any(
      p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def check_signature(name: str, fn: Any, n_positional: int, form: str,
                    keywords: Iterable[str] = ()) -> None:
  """Raises ``TypeError`` unless ``fn`` is callable as ``fn(*n_positional
  args, **keywords)``: a user function of the wrong shape (a two-argument
  ``loss_fn`` where ``loss_fn(logits, batch, params)`` is called) is named
  with the form it must have, before Python's own message from deep inside a
  trace. ``form`` is that call written out. Callables without an inspectable
  signature (some builtins, C functions) pass.
  """
  if not callable(fn):
    raise TypeError(f"{name} must be a function {form}; got {type(fn).__name__}.")
  try:
    sig = inspect.signature(fn)
  except (TypeError, ValueError):
    return
  try:
    sig.bind(*([None] * n_positional), **{k: None for k in keywords})
  except TypeError as e:
    raise TypeError(
        f"{name} must be a function {form}; {getattr(fn, '__name__', type(fn).__name__)}"
        f"{sig} cannot be called so ({e}).") from None


def check_options(call: str, options: Iterable[str], takes: Callable | Iterable[str], *,
                  exclude: Iterable[str] = (), passed_to: str | None = None,
                  error: type[Exception] = TypeError) -> None:
  """Refuses keyword options that ``call`` does not take, naming them and the
  ones it does: ``takes`` is the option names, or the function the options
  are passed on to (its keyword parameters, less ``exclude``; a function with
  ``**kwargs`` or without a signature takes anything). A misspelt option
  forwarded through ``**options`` is named against the public call, not as
  Python's "unexpected keyword" from an inner function the user never
  called (the nineteenth trial's ``mask_scal=``)."""
  if callable(takes):
    try:
      params = inspect.signature(takes).parameters
    except (TypeError, ValueError):
      return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
      return
    skip = set(exclude)
    known = [k for k, p in params.items() if k not in skip and p.kind in (
        inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
  else:
    known = list(takes)
  unknown = sorted(set(options) - set(known))
  if unknown:
    takes_ = (f"takes, besides its own arguments, the options of {passed_to}" if passed_to
              else "takes the options")
    raise error(
        f"{call} {takes_} {', '.join(known) or '(none)'}; got unknown "
        f"option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}.")


def user_stacklevel() -> int:
  """The ``stacklevel`` that points a warning raised here at the first frame
  outside the library (the user's call), however deep the check runs."""
  package = os.path.dirname(os.path.abspath(__file__))
  frame: Any = sys._getframe(1)
  level = 1
  while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
    frame, level = frame.f_back, level + 1
  return level


def as_numbers(name: str, value: Any, what: str, dtype=np.float64) -> np.ndarray:
  """``value`` as a numpy array of ``dtype``, or a ``TypeError`` naming the
  argument and what it must be (a dict or a list of strings fails inside
  numpy with a message that names neither)."""
  try:
    return np.asarray(value, dtype=dtype)
  except (TypeError, ValueError):
    if "Tracer" in type(value).__name__:  # traced: the caller's own path
      raise
    if isinstance(value, np.ndarray) and value.dtype == object and value.ndim == 0:
      value = value.item()
    raise TypeError(f"{name} must be {what} of numbers; got {type(value).__name__}"
                    + (f" {value!r}" if isinstance(value, (dict, str)) and len(str(value)) < 60
                       else "") + ".") from None


def check_array_leaves(name: str, paths: Iterable[str], leaves: Iterable[Any]) -> None:
  """Refuses a parameter pytree with a leaf that is not an array (a model's
  function passed where its parameters belong, say): ``paths`` name the
  leaves (``"conv1/kernel"``, ``""`` for the tree itself)."""
  for path, leaf in zip(paths, leaves):
    if hasattr(leaf, "shape") and hasattr(leaf, "dtype") or isinstance(
        leaf, (bool, int, float, complex, np.number, np.bool_)):
      continue
    where = f" at {path!r}" if path else ""
    hint = (" (a function: pass the model itself, a models.Classifier, or its parameters, "
            "clf.params)" if callable(leaf) else "")
    raise TypeError(f"{name} must hold parameter arrays (a pytree of them, or a "
                    f"models.Classifier where a model is taken); got {type(leaf).__name__}"
                    f"{where}{hint}.")


def check_key(name: str, key: Any, *, call: str | None = None):
  """``key`` as a typed PRNG key; raw ``uint32[2]`` key data is wrapped.

  Raises ``TypeError`` naming the argument (and the call's key-first form,
  ``call``) for anything else, e.g. ``None`` or a model passed where the key
  belongs.
  """
  import jax
  import jax.numpy as jnp
  if isinstance(key, jax.Array):
    typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    if typed and key.shape == ():
      return key
    if key.shape == (2,) and key.dtype == jnp.uint32:
      return jax.random.wrap_key_data(key)
    if typed or (key.dtype == jnp.uint32 and key.shape[-1:] == (2,)):
      # One call draws from one key; a batch (jax.random.split's output)
      # would be read as one key by some callees and fail inside others.
      shape = key.shape if typed else key.shape[:-1]
      raise TypeError(
          f"{name} must be one PRNG key; got a batch of keys of shape {tuple(shape)} "
          f"(jax.random.split's output?): pass one of them ({name}s[0]) or the key they "
          "were split from.")
  got = f"an array of dtype {key.dtype}" if hasattr(key, "dtype") else type(key).__name__
  hint = f" (the key comes first: {call})" if call else ""
  raise TypeError(f"{name} must be a PRNG key from jax.random.key(seed); got {got}{hint}.")


def register(kind: str, registry: dict, name: Any, entry: Any, *, arg: str,
             overwrite: bool) -> None:
  """``registry[name] = entry`` after the checks every registry shares: a
  non-empty string name, a callable entry (the argument ``arg``), and a taken
  name only with ``overwrite``."""
  if not isinstance(name, str) or not name:
    raise ValueError(f"name must be a non-empty string; got {name!r}.")
  if not callable(entry):
    raise TypeError(f"{arg} must be a function; got {type(entry).__name__}.")
  if name in registry and not overwrite:
    raise ValueError(f"name {name!r} is already a registered {kind}; pass overwrite=True "
                     "to replace it.")
  registry[name] = entry


def named_check(fn: Callable) -> Callable:
  """Marks a public checking helper called as ``fn(name, value, ...)``: a
  ``name`` that is not a string (the two arguments swapped, say) is refused
  before the check runs, instead of printing the value as the argument's
  name."""
  @functools.wraps(fn)
  def checked(name, *args, **kwargs):
    if not isinstance(name, str):
      swapped = bool(args) and isinstance(args[0], str)
      raise TypeError(
          f"{fn.__name__}(name, value, ...) takes the argument's name first, a string; got "
          f"{type(name).__name__} as name" + (f" and the string {args[0]!r} as the value: the "
                                               "arguments are swapped" if swapped else "") + ".")
    return fn(name, *args, **kwargs)
  return checked
