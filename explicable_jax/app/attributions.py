"""``explicable-jax evaluate-attributions``: are a model's explanations right?

For an exported model (zoo or adapted through the contract) and a dataset of
the registry or an ``.npz`` file, on the first ``images`` images of the test
half of the paper split (seed ``seed``) and their predicted classes, every
attribution method of the library that fits the model (layer methods at
``layer``, the last spatial split point by default) is scored with every
metric of :mod:`explicable_jax.attribution.evaluation` that applies: the
sanity checks (model-parameter randomisation, random logit), faithfulness
(deletion and insertion AUC, infidelity, faithfulness correlation),
robustness (sensitivity), complexity (sparseness) and, with ``annotations``,
localisation (relevance mass, pointing game). The methods and metrics are
the registries :data:`~explicable_jax.app.audit.faithfulness.EXPLANATIONS`
and :data:`~explicable_jax.app.audit.faithfulness.METRICS`, shared with the
audit's faithfulness section.

Writes ``results.json`` (every interval, every per-image value) and
``table.md`` (method x metric, mean and 95% interval over the images, and the
sanity verdict) to ``out``; each method's numbers are cached in
``out/cache``, so a rerun of the same command resumes at the first method not
yet scored.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import re
import time

import jax
import numpy as np

from explicable_jax import _paths, _validation, conventions
from explicable_jax.app import _options
from explicable_jax.app._options import setting
from explicable_jax.app.audit import faithfulness as F

__all__ = ["AttributionEvaluationConfig", "evaluate_attributions", "applicable_methods",
           "markdown_table", "method_names", "metric_names"]


def method_names() -> tuple[str, ...]:
  """Every attribution method the command can score."""
  return tuple(F.EXPLANATIONS)


def metric_names() -> tuple[str, ...]:
  """Every metric the command can compute."""
  return tuple(F.METRICS)


@dataclasses.dataclass(frozen=True)
class AttributionEvaluationConfig:
  """Every setting of :func:`evaluate_attributions` and ``explicable-jax
  evaluate-attributions`` with its default; the CLI's options are built from
  these fields."""
  dataset: str | None = setting(None, "a dataset of the registry (its test set is halved)",
                                group="data")
  data_file: str | None = setting(None, "an .npz with x_train, y_train, x_test, y_test",
                                  flag="--data", group="data", metavar="FILE.npz")
  methods: tuple[str, ...] | None = setting(
      None, "the attribution methods (default: every one that fits the model)", items=str,
      choices=method_names)
  metrics: tuple[str, ...] | None = setting(
      None, "the metrics (default: every one that applies)", items=str, choices=metric_names)
  images: int = setting(64, "test images scored (the first of the test half)")
  layer: str | None = setting(None, "split point of the layer methods (default: the last "
                              "one with a feature map)")
  annotations: str | None = setting(
      None, "an .npz whose 'mask' marks the ground-truth features (localisation metrics)")
  seed: int = setting(0, "seed of the split, the randomised weights and the perturbations")
  data_dir: str | None = setting(None, "local data folder (default: $EXPLICABLE_JAX_DATA)")

  def __post_init__(self):
    for name in ("methods", "metrics"):
      v = getattr(self, name)
      if isinstance(v, str):
        v = (v,)
      if v is not None:
        v = tuple(v)
        if not v:
          raise ValueError(f"{name} must name one or more; got none.")
        for item in v:
          _validation.check_choice(name, item, method_names() if name == "methods"
                                   else metric_names())
      object.__setattr__(self, name, v)
    _validation.check_positive("images", self.images, integer=True)
    _validation.check_seed("seed", self.seed)
    if (self.dataset is None) == (self.data_file is None):
      raise ValueError(f"give exactly one of dataset or data_file; got dataset="
                       f"{self.dataset!r}, data_file={self.data_file!r}.")
    if self.annotations is not None and not os.path.exists(self.annotations):
      raise FileNotFoundError(f"annotations file {self.annotations!r} does not exist.")
    wants_mask = [m for m in (self.metrics or ()) if m in F.MASK_METRICS]
    if wants_mask and self.annotations is None:
      raise ValueError(f"metrics {', '.join(wants_mask)} need annotations; give "
                       "--annotations FILE.npz.")


def applicable_methods(clf, layer: str | None, example_shape) -> dict[str, str | None]:
  """``{method: its layer}`` for every method of
  :data:`~explicable_jax.app.audit.faithfulness.EXPLANATIONS` that fits
  ``clf``: the layer methods only where ``layer`` is spatial; the
  deliberative class maps at ``layer`` when spatial, else in input space."""
  spatial = F.spatial_layer(clf, layer, example_shape)
  out = {}
  for name in F.EXPLANATIONS:
    if name in F.LAYER_METHODS and spatial is None:
      continue
    out[name] = spatial if (name in F.LAYER_METHODS or name.startswith("deliberative")) \
        else None
  return out


def _slug(name: str) -> str:
  return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _cell(c: dict) -> str:
  if not c["n"]:
    return "n/a"
  return f"{c['mean']:.3g} [{c['low']:.3g}, {c['high']:.3g}]"


def markdown_table(results: dict) -> str:
  """``results.json``'s methods as a Markdown table: one row per method, one
  column per metric (mean [95% interval] over the images), and the sanity
  verdict."""
  metrics = results["metrics"]
  arrows = {m: "↓" if F.METRICS[m][1] == "lower" else "↑" for m in metrics}
  header = ["method", "layer", *[f"{m} {arrows[m]}" for m in metrics]]
  sanity = "randomisation" in metrics
  if sanity:
    header.append(f"sanity check (upper bound < {results['threshold']})")
  lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
  for name, r in results["methods"].items():
    row = [name, r["layer"] or "-", *[_cell(r["intervals"][m]) for m in metrics]]
    if sanity:
      row.append("passes" if r["passes"] else "fails")
    lines.append("| " + " | ".join(row) + " |")
  return "\n".join(lines) + "\n"


@conventions.boundary()
def evaluate_attributions(model, out: str, config: AttributionEvaluationConfig | None = None,
                          *, progress: bool = True, command: str | None = None,
                          **overrides) -> dict:
  """Scores attribution methods of ``model`` with the evaluation metrics;
  writes ``out/results.json`` and ``out/table.md``; returns the results.

  Args:
    model: a model folder (train workdir or ``models.save``) or a model in
      memory.
    out: the output folder (its ``cache/`` makes a rerun resume).
    config: the settings (:class:`AttributionEvaluationConfig`).
    progress: print a line per method.
    command: the command line to record.
    **overrides: settings replacing ``config``'s, by field name.

  Returns:
    ``results.json``'s dict: ``methods`` (per method its layer, seconds,
    ``intervals`` and ``per_image`` values by metric, and the sanity
    verdict), ``metrics``, ``images``, ``data``, ``layer``, ``threshold``,
    ``accuracy`` (of the images scored), ``annotated_share`` (the share of
    their pixels the annotations mark), ``command``, ``date``,
    ``wall_seconds``.
  """
  from explicable_jax.app.audit import context
  from explicable_jax.detection import pipeline
  t0 = time.time()
  config = _options.overridden(config, overrides, what="evaluate_attributions()",
                               kind=AttributionEvaluationConfig)
  say = print if progress else (lambda *a, **k: None)
  clf, model_path = context._resolve_model("model", model)
  c = config
  _paths.check_folder("out", out)
  if c.data_file is not None:
    _paths.check_npz("data_file", c.data_file, "x_train, y_train, x_test and y_test")
  splits, data_note, index = pipeline.load_splits(c.dataset, c.data_file, c.data_dir, c.seed,
                                                  None, with_index=True)
  pipeline.check_split_labels(splits, clf.num_classes, dataset=c.dataset,
                              data_file=c.data_file)
  x_all = splits["test"][0]
  mask = context.load_annotations(c.annotations, splits, index)
  x = np.asarray(x_all[:c.images])
  if mask is not None:
    mask = np.asarray(mask[:c.images])
  target = pipeline.predict_logits(clf, x).argmax(-1)
  layer = c.layer
  if layer is None:
    layer = pipeline.default_layer(clf, x)
  elif layer not in clf.layers:
    clf.check_layer(layer)
  methods = applicable_methods(clf, layer, x.shape[1:])
  if c.methods is not None:
    missing = [m for m in c.methods if m not in methods]
    if missing:
      raise ValueError(f"methods {', '.join(missing)} need a spatial layer (activations "
                       f"(N, h, w, C)); layer {layer!r} is not one. Give --layer.")
    methods = {m: methods[m] for m in c.methods}
  metrics = list(c.metrics or [m for m in F.METRICS
                               if mask is not None or m not in F.MASK_METRICS])
  data_id = c.dataset
  if c.data_file is not None:
    with open(c.data_file, "rb") as fh:
      data_id = hashlib.sha1(fh.read()).hexdigest()
  base = {"model": context.checksum(clf), "data": data_id, "seed": c.seed,
          "images": c.images, "metrics": metrics,
          "annotations": None if mask is None else hashlib.sha1(mask.tobytes()).hexdigest()}
  cache = context.Cache(os.path.join(out, "cache"), base)
  key = jax.random.key(c.seed)
  rows = {}
  for name, mlayer in methods.items():
    def compute(name=name, mlayer=mlayer):
      s = time.time()
      per = F.score_explanations(key, clf, x, target, name, layer=mlayer, metrics=metrics,
                                 mask=mask)
      return {"per_image": per, "seconds": time.time() - s}
    r = cache.json(_slug(name), {"method": name, "layer": mlayer}, compute)
    row = {"layer": mlayer, "seconds": r["seconds"],
           "intervals": {m: F.interval(v) for m, v in r["per_image"].items()},
           "per_image": r["per_image"]}
    if "randomisation" in r["per_image"]:
      row["passes"] = F.sanity_verdict(r["per_image"]["randomisation"])
    rows[name] = row
    say(f"{name}: {r['seconds']:.0f} s ({time.time() - t0:.0f} s)")
  res = {"model": model_path or type(model).__name__, "data": data_note,
         "images": int(len(x)), "layer": layer, "metrics": metrics,
         "threshold": F.SANITY_THRESHOLD,
         "metric_descriptions": {m: F.METRICS[m][2] for m in metrics},
         "better": {m: F.METRICS[m][1] for m in metrics},
         "annotated_share": None if mask is None else float(
             (np.asarray(mask).reshape(len(x), -1) > 0).mean()),
         "accuracy": float(np.mean(target == np.asarray(splits["test"][1][:c.images]))),
         "methods": rows, "command": command, "date": datetime.date.today().isoformat(),
         "wall_seconds": time.time() - t0, "backend": jax.default_backend()}
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, "results.json.tmp"), "w") as f:
    json.dump(res, f, indent=1, default=float)
  os.replace(os.path.join(out, "results.json.tmp"), os.path.join(out, "results.json"))
  with open(os.path.join(out, "table.md"), "w") as f:
    f.write(markdown_table(res))
  return res

