"""What :func:`~explicable_jax.training.fit` reports to: the callback hooks,
the JSON-lines metrics writer, the TensorBoard writer, and the history it
returns."""
from __future__ import annotations

import dataclasses
import json

import numpy as np

from explicable_jax import _paths

__all__ = ["JsonlLogger", "Callback", "MetricsWriter", "TensorBoardWriter", "History"]


class JsonlLogger:
  """Appends one JSON object per line to ``path`` (and flushes each line).

  ``path`` may be local or a URI such as ``gs://bucket/run/metrics.jsonl``
  (see ``explicable_jax._paths``)."""

  def __init__(self, path: str):
    _paths.check_file("path", path)
    self.path = _paths.resolve(path)
    self.path.parent.mkdir(parents=True, exist_ok=True)

  def truncate_after(self, step: int) -> None:
    """Drops the records of steps after ``step`` (and a line cut short by a
    kill), so that a run resumed from the checkpoint at ``step`` logs each
    step once; records without a step are kept."""
    if not self.path.exists():
      return
    keep = []
    for line in self.path.read_text().splitlines():
      try:
        record = json.loads(line)
      except json.JSONDecodeError:
        continue
      if not isinstance(record.get("step"), int) or record["step"] <= step:
        keep.append(json.dumps(record) + "\n")
    _paths.write_text(self.path, "".join(keep))

  def write(self, **record) -> None:
    record = {k: (v.item() if hasattr(v, "item") else v) for k, v in record.items()}
    _paths.append_line(self.path, json.dumps(record) + "\n")


class Callback:
  """Hooks of :func:`fit`; override any of them. ``fit`` calls them on process
  0 only (``jax.process_index() == 0``), with plain Python numbers.

  * ``on_train_begin(step)``: before the first step (``step`` > 0 when the
    run resumed);
  * ``on_log(record)``: every ``log_every`` steps: ``step``, ``epoch``,
    ``loss``, ``accuracy``, the loss's auxiliary metrics, ``images_per_s``;
  * ``on_eval(record)``: after each evaluation: ``step``, ``epoch``,
    ``eval_accuracy``, ``eval_loss``;
  * ``on_train_end(step)``: after the last step, or when the run stops early.
  """

  def on_train_begin(self, step: int) -> None:
    pass

  def on_log(self, record: dict) -> None:
    pass

  def on_eval(self, record: dict) -> None:
    pass

  def on_train_end(self, step: int) -> None:
    pass


class MetricsWriter(Callback):
  """Writes every log and evaluation record as one line of a JSON-lines file
  (``workdir/metrics.jsonl`` in :func:`fit`)."""

  def __init__(self, path: str):
    self.logger = JsonlLogger(path)

  def on_log(self, record: dict) -> None:
    self.logger.write(**record)

  on_eval = on_log


class TensorBoardWriter(Callback):
  """An example writer: each numeric entry of the log and evaluation records
  as a TensorBoard scalar at its step (``tensorboardX``, installed with
  ``pip install explicable-jax[tensorboard]``). One writer per ``fit``: it is
  closed when training ends."""

  def __init__(self, logdir: str):
    try:
      from tensorboardX import SummaryWriter
    except ImportError as e:
      raise ImportError("TensorBoardWriter needs tensorboardX: pip install "
                        "'explicable-jax[tensorboard]' (or tensorboardX).") from e
    self.writer = SummaryWriter(logdir)

  def on_log(self, record: dict) -> None:
    step = int(record["step"])
    for k, v in record.items():
      if k not in ("step", "epoch") and isinstance(v, (int, float)) and not isinstance(v, bool):
        self.writer.add_scalar(k, v, step)

  on_eval = on_log

  def on_train_end(self, step: int) -> None:
    self.writer.close()


@dataclasses.dataclass
class History:
  """What :func:`fit` logged: ``logs`` (one record per ``log_every`` steps)
  and ``evals`` (one per evaluation), as the callbacks saw them."""
  logs: list = dataclasses.field(default_factory=list)
  evals: list = dataclasses.field(default_factory=list)

  def series(self, key: str, *, evals: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of one metric, e.g. ``history.series("loss")``."""
    recs = [r for r in (self.evals if evals else self.logs) if key in r]
    return (np.array([r["step"] for r in recs]), np.array([r[key] for r in recs]))
