"""Optional capabilities of a :class:`~explicable_jax.models.Backend`, as
protocols: what a backend offers beyond the contract's ``apply`` /
``features`` / ``head``, declared rather than found by ``hasattr``.

A backend declares a capability by subclassing its protocol (the NNX backend
declares :class:`SubModuleStarts`); code that uses one tests
``isinstance(backend, SubModuleStarts)``. The protocols are runtime-checkable,
so a third-party backend that implements every method is accepted too.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

__all__ = ["SubModuleStarts"]


@runtime_checkable
class SubModuleStarts(Protocol):
  """A backend that can start a forward pass inside a stage, at a sub-module.

  :func:`explicable_jax.mutation.mutant_predictions` (``share_prefix=True``)
  uses it to start a mutant at its first changed convolution rather than at
  the split point before it. ``path`` is a dotted sub-module path
  (``"blocks.1.conv2"``), ``params``/``state`` the classifier's, every
  method evaluation mode.
  """

  def linear_module(self, params: Any, state: Any, path: str) -> bool:
    """Whether the sub-module at ``path`` is linear in its parameters channel
    by channel (``nnx.Conv``, ``nnx.Linear``): negating an output channel's
    weights and bias negates that channel of its output."""
    ...

  def module_calls(self, params: Any, state: Any, path: str, input_spec: Any) -> int:
    """How many times one forward pass on ``input_spec`` calls the sub-module."""
    ...

  def module_io(self, params: Any, state: Any, x: Any, path: str) -> tuple[tuple, Any]:
    """``(positional inputs, output)`` of the sub-module's first call in the
    forward pass on ``x``; ``ValueError`` when it takes keyword inputs."""
    ...

  def head_replacing(self, params: Any, state: Any, h: Any, layer: str | None,
                     input_spec: Any, path: str, fn: Callable[..., Any]) -> Any:
    """The logits from split point ``layer``'s activation ``h`` (``None``:
    the whole forward pass on the input ``h``) with the sub-module at
    ``path`` computed as ``fn(module, *args, **kwargs)``."""
    ...
