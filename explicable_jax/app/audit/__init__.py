"""``explicable-jax audit``: one command that examines a trained classifier.

For an exported model (the zoo, or any model adapted through the contract of
:mod:`explicable_jax.models`) and a dataset (a name of the registry, or an
``.npz`` with ``x_train, y_train, x_test, y_test``), on the paper split (the
training set; the test set halved at random into a validation and a test
half, ``seed``), :func:`audit` answers six questions and writes one report:

1. **Mistakes** (:mod:`.mistakes`; Olmo, Sengupta and Kambhampati, ICCV 2021):
   the confusion matrix of the test half; a class-similarity matrix ``W``
   (EKL: WordNet path similarity of the class names; IHL / CHL for CIFAR-10
   from the human labels in the data folder; or a given ``.npy``); the mean
   ``W`` of the mistakes beside the **chance baseline**; the most and least
   explicable confusions; with ``reference``, Olmo et al.'s hard and soft
   scores of the two models.
2. **Error detection** (:mod:`.error_detection`; Wu, Michel and Briot; Wang et
   al., ICSE 2019): the **baseline** MSP; the label change rate over
   ``mutants`` accuracy-gated mutants, the rate chosen among ``rates``; Wu et
   al.'s conductance detector at ``layer``; their combination (LDA). AUROC,
   AURC, E-AURC, the bootstrap gain over MSP, risk-coverage curves, and the
   threshold that accepts ``coverage`` of the validation half.
3. **Reliance** (:mod:`.reliance`; Ross, Hughes and Doshi-Velez, IJCAI 2017):
   with ``annotations``, the share of the input gradient on the annotated
   features and the accuracy with them masked.
4. **Hesitation** (:mod:`.hesitation`; Wang and Vasconcelos, NeurIPS 2019):
   the insecurities of the ``hardest`` test images, drawn.
5. **Robustness** (:mod:`.robustness`): accuracy of the test half under
   Gaussian noise, FGSM and the CIFAR-10-C-style corruptions; how well LCR
   and MSP tell its FGSM and DeepFool adversarial inputs from normal ones
   (Wang et al., ICSE 2019; ``adversarial_images``).
6. **Faithfulness** (:mod:`.faithfulness`; Adebayo et al., NeurIPS 2018):
   for each attribution map the sections above read, on the first
   ``faithfulness_images`` test images, the model-parameter randomisation
   check and the insertion AUC against a random ranking.

Each section is a :class:`~.section.Section` (its run, summary rows, report
part and figure) in the one list :data:`SECTIONS`; every setting and default
is a field of :class:`AuditConfig`, which the API, the CLI's options and the
equivalent command in the report all read. To add a section, write a module
like :mod:`.robustness` and add its ``SECTION`` to the list below (or call
:func:`register_section`); its settings are new fields of :class:`AuditConfig`.

Every stage is cached under ``out/cache`` (keyed by the weights, the data and
its settings), so a rerun of the same command after an interruption resumes.
Writes ``report.html`` (self-contained, a one-screen summary first; figures
through :mod:`explicable_jax.viz`), ``results.json`` (every number) and
``command.txt``.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import time
from typing import Any

import jax

from explicable_jax import _paths, conventions
from explicable_jax.app import _options
from explicable_jax.app.audit import (error_detection, faithfulness, hesitation, mistakes,
                                      reliance, robustness)
from explicable_jax.app.audit.config import (DEFAULT_CORRUPTIONS, SIMILARITIES, AuditConfig,
                                             equivalent_command)
from explicable_jax.app.audit.context import AuditContext, similarity_matrix
from explicable_jax.app.audit.error_detection import coverage_threshold
from explicable_jax.app.audit.hesitation import hesitation_stage, mask_to_rows, rows_to_mask
from explicable_jax.app.audit.mistakes import mistakes_stage
from explicable_jax.app.audit.reliance import reliance_stage
from explicable_jax.app.audit.report import write_report
from explicable_jax.app.audit.robustness import robustness_stage
from explicable_jax.app.audit.section import (SECTIONS, Section, register_section,
                                              section_names)

__all__ = [
    "audit", "AuditConfig", "AuditResult", "AuditContext", "Section", "SECTIONS",
    "register_section", "section_names", "equivalent_command", "write_report",
    "similarity_matrix", "mistakes_stage", "coverage_threshold", "reliance_stage",
    "hesitation_stage", "robustness_stage", "mask_to_rows", "rows_to_mask", "SIMILARITIES",
    "DEFAULT_CORRUPTIONS",
]

# The audit's sections, in the report's order: the one list.
for _section in (mistakes.SECTION, error_detection.SECTION, reliance.SECTION,
                 hesitation.SECTION, robustness.SECTION, faithfulness.SECTION):
  if _section.name not in section_names():
    register_section(_section)


@dataclasses.dataclass(frozen=True)
class AuditResult:
  """What :func:`audit` measured; :meth:`as_dict` is ``results.json``.

  ``summary`` holds the headline numbers of the report's first screen;
  ``sections`` every section's numbers by name, also read as attributes
  (``result.mistakes``, ``result.detection``...); ``report`` and ``results``
  are the written files' paths.
  """
  summary: dict
  sections: dict
  settings: dict
  data: str
  command: str
  date: str
  wall_seconds: float
  report: str
  results: str
  note: str | None = None

  def __getattr__(self, name: str) -> Any:
    if name.startswith("__") or name == "sections":
      raise AttributeError(name)
    try:
      return self.sections[name]
    except KeyError:
      raise AttributeError(f"AuditResult has no attribute or section {name!r}; its sections "
                           f"are {', '.join(self.sections)}.") from None

  def as_dict(self) -> dict:
    """``results.json``: the summary, each section by name, then the rest."""
    d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
    return {"summary": d.pop("summary"), **d.pop("sections"), **d}


def _settings(ctx: AuditContext, model, config: AuditConfig, run: list) -> dict:
  """The settings table of the report: the model, then every setting as run
  (class names and layer resolved), then the backend."""
  settings: dict[str, Any] = {"model": ctx.model_path or repr(type(model).__name__),
                              "reference": ctx.reference_path}
  for f in dataclasses.fields(config):
    if f.name in ("reference", "data_dir"):
      continue
    v = getattr(config, f.name)
    if f.name == "similarity" and not isinstance(v, str):
      v = "array"
    settings[f.name] = list(v) if isinstance(v, tuple) else v
  settings["sections"] = [s.name for s in run]
  settings.update(backend=jax.default_backend(), jax=jax.__version__)
  return settings


@conventions.boundary()
def audit(model, out: str, config: AuditConfig | None = None, *, progress: bool = True,
          command: str | None = None, note: str | None = None, **overrides) -> AuditResult:
  """Audits a trained classifier; writes ``out/report.html``,
  ``out/results.json`` and ``out/command.txt``; returns the numbers.

  Args:
    model: a folder (a train workdir or one written by ``models.save``) or a
      model in memory (a :class:`~explicable_jax.models.Classifier`, or an
      NNX module / linen or plain-JAX model adapted through
      :mod:`explicable_jax.models`).
    out: the output folder (its ``cache/`` makes a rerun resume).
    config: the settings (default: :class:`AuditConfig`'s defaults; give the
      data as ``dataset=`` or ``data_file=``).
    progress: print progress and show a progress bar.
    command: the command line to record (the CLI passes its own; default:
      the equivalent ``explicable-jax audit`` command when ``model`` is a
      folder).
    note: a paragraph for the top of the report (what was audited, caveats).
    **overrides: settings replacing ``config``'s, by field name
      (``data_file="d.npz", rates=(0.05,)``...).

  Returns:
    An :class:`AuditResult`.

  Example: a model folder and a dataset of the registry are audited with
  ``audit("runs/resnet20", "audit_out", dataset="cifar10", similarity="ihl")``;
  here, in seconds, a rule on 4x4 images and only the first section:

    >>> import os, tempfile, numpy as np
    >>> from explicable_jax import models
    >>> x = np.random.default_rng(0).random((40, 4, 4, 1), dtype=np.float32)
    >>> y = (x.mean((1, 2, 3)) > 0.5).astype(np.int64)  # bright images are class 1
    >>> d = tempfile.mkdtemp()
    >>> np.savez(f"{d}/data.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    >>> np.save(f"{d}/similarity.npy", np.array([[1.0, 0.5], [0.5, 1.0]]))
    >>> w = np.tile(np.float32([-1.0, 1.0]), (16, 1))
    >>> clf = models.from_functions(  # a biased rule: class 1 above a mean of 0.25
    ...     lambda w, x: x.reshape(len(x), -1) @ w - np.float32([0.0, 8.0]), w,
    ...     input_shape=(4, 4, 1), num_classes=2)
    >>> res = audit(clf, f"{d}/out", data_file=f"{d}/data.npz",
    ...             similarity=f"{d}/similarity.npy", sections=("mistakes",), progress=False)
    >>> res.summary["How accurate is it?"], sorted(os.listdir(f"{d}/out"))
    ('0.5500 on the test half (9 mistakes)', ['cache', 'command.txt', 'report.html', 'results.json'])
  """
  t0 = time.time()
  config = _options.overridden(config, overrides, what="audit()", kind=AuditConfig).validate()
  _paths.check_folder("out", out)
  say = print if progress else (lambda *a, **k: None)
  from explicable_jax.app.audit.context import prepare
  ctx = prepare(model, out, config, say)
  run = [s for s in SECTIONS if config.sections is None or s.name in config.sections]
  for s in run:
    s.check(config, ctx)
  from tqdm.auto import tqdm
  bar = tqdm(total=1 + len(run), desc="audit", unit="stage", disable=not progress)
  wrong = ctx.wrong
  for k in ("validation", "test"):
    if wrong[k].all() or not wrong[k].any():
      raise ValueError(f"the {k} half has {int(wrong[k].sum())} wrong predictions out of "
                       f"{len(wrong[k])}; the audit needs both right and wrong ones.")
  say(f"predictions: accuracy test half {1 - wrong['test'].mean():.4f} "
      f"({time.time() - t0:.0f}s)")
  bar.update(1)
  results = ctx.results
  for s in run:
    bar.set_postfix_str(s.name)
    results[s.name] = s.run(config, ctx)
    bar.update(1)
  bar.close()

  resolved = dataclasses.replace(config, classes=tuple(ctx.names), layer=ctx.layer)
  if command is None:
    command = (equivalent_command(ctx.model_path, resolved, out) if ctx.model_path
               else "explicable_jax.app.audit.audit(<a model in memory>, ...) from Python")
  os.makedirs(out, exist_ok=True)
  summary = {q: a for s in run for q, a in s.summary(results[s.name], ctx)}
  res = AuditResult(
      summary=summary, sections=results, settings=_settings(ctx, model, resolved, run),
      data=ctx.data_note, command=command, date=datetime.date.today().isoformat(),
      wall_seconds=time.time() - t0,
      report=os.path.abspath(os.path.join(out, "report.html")),
      results=os.path.abspath(os.path.join(out, "results.json")), note=note)
  import matplotlib
  matplotlib.use("Agg")
  figures = {s.name: s.figure(results[s.name], ctx) for s in run}
  write_report(res.as_dict(), out, figures, run)
  with open(res.results + ".tmp", "w") as f:
    json.dump(res.as_dict(), f, indent=1, default=float)
  os.replace(res.results + ".tmp", res.results)
  with open(os.path.join(out, "command.txt"), "w") as f:
    f.write(command + "\n")
  return res
