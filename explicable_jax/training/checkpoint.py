"""Orbax checkpoints of a training state."""
from __future__ import annotations

import os
import warnings

import jax

from explicable_jax import _paths, _plain, _validation
from explicable_jax.training.state import TrainState

__all__ = [
    "Checkpointer",
]


class Checkpointer:
  """Orbax checkpoints of a :class:`TrainState` in ``directory``.

  Writes are atomic (orbax writes to a temporary folder and renames it), so a
  run killed while saving leaves the previous checkpoint intact. ``restore``
  falls back to the newest checkpoint that reads back if the newest is
  damaged (with a warning naming the steps it skipped); a later ``save`` at a
  damaged step replaces it.
  """

  def __init__(self, directory: str | os.PathLike, *, max_to_keep: int = 3):
    import orbax.checkpoint as ocp  # Host-side only.
    _paths.check_folder("directory", directory)
    if max_to_keep is not None:  # None keeps every checkpoint (orbax's rule)
      _validation.check_positive("max_to_keep", max_to_keep, integer=True)
    self._ocp = ocp
    # A local folder is made absolute; a gs:// or s3:// URI is kept as it is
    # (orbax writes to it through tensorstore).
    self.directory = os.fspath(_paths.resolve(directory))
    self._damaged: set[int] = set()  # steps that did not read back in restore
    self.manager = ocp.CheckpointManager(
        _paths.resolve(directory),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True,
            enable_async_checkpointing=False))

  def latest_step(self) -> int | None:
    self.manager.reload()
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    self.manager.reload()
    return sorted(self.manager.all_steps())

  def save(self, state: TrainState, *, force: bool = True) -> None:
    step = int(jax.device_get(state.step))
    if step in self._damaged:  # found unreadable by restore: write it anew
      self.manager.delete(step)
      self._damaged.discard(step)
    if step in self.all_steps():
      return
    self.manager.save(step, args=self._ocp.args.StandardSave(
        _plain.to_plain(state.checkpoint_tree())), force=force)
    self.manager.wait_until_finished()

  def restore(self, template: TrainState, step: int | None = None) -> TrainState:
    """The newest readable checkpoint (or ``step``), shaped like ``template``."""
    if step is not None and step not in self.all_steps():
      raise ValueError(f"step must be one of the checkpointed steps {self.all_steps()} in "
                       f"{self.directory!r}; got {step!r}.")
    steps = [step] if step is not None else self.all_steps()[::-1]
    if not steps:
      inner = os.path.join(os.fspath(self.directory), "checkpoints")
      hint = (f" (a run folder? its checkpoints are in {inner!r}: Checkpointer(<workdir>/"
              "checkpoints))" if os.path.isdir(inner) else "")
      raise FileNotFoundError(f"No checkpoint in {self.directory!r}{hint}.")
    target = template.checkpoint_tree()
    abstract = _plain.abstract(target)
    errors, failed = [], []
    for s in steps:
      folder = os.path.join(self.directory, str(s))
      if os.path.isdir(folder) and not os.path.isdir(os.path.join(folder, "default")):
        # A save cut short, or a deleted item: asking orbax to read it leaves
        # the manager wanting Composite args for every later step too.
        errors.append(f"step {s}: its folder lacks the checkpoint's item 'default'")
        failed.append(s)
        continue
      try:
        tree = self.manager.restore(
            s, args=self._ocp.args.StandardRestore(abstract))
      except Exception as e:  # Damaged checkpoint: try the one before.
        errors.append(f"step {s}: {type(e).__name__}: {str(e)[:300]}")
        failed.append(s)
        continue
      wrong = _plain.mismatches(abstract, tree)
      if wrong:
        raise ValueError(
            f"the checkpoint at step {s} in {self.directory!r} holds another model or "
            f"optimiser: {'; '.join(wrong)}. Train into an empty workdir, or resume with "
            "the model and optimiser that wrote it.")
      if errors:
        self._damaged.update(failed)
        warnings.warn(
            f"the newest checkpoint(s) in {self.directory!r} could not be read ("
            f"{'; '.join(errors)}); restored step {s}, the newest that reads back (a save "
            "at a damaged step replaces it).", RuntimeWarning, stacklevel=_validation.user_stacklevel())
      return template.with_checkpoint_tree(_plain.from_plain(target, tree))
    if errors and all("tree structure" in e or "structures do not match" in e
                      for e in errors):
      raise ValueError(
          f"the checkpoints in {self.directory!r} hold another model or optimiser (their "
          "parameter trees differ from this state's; the files themselves are intact): "
          "resume with the model and optimiser that wrote them, or train into another "
          "workdir (resume='allow_changes' continues a run with other settings, not another "
          f"architecture). Details: {errors[0]}")
    raise RuntimeError(
        f"No checkpoint in {self.directory!r} could be read, so the run cannot continue from "
        "them: restore the folder from a copy, or move it away to train afresh. Details: "
        + "; ".join(errors))

  def close(self) -> None:
    self.manager.close()

