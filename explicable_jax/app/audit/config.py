"""Every setting of the audit and its default, in one place.

:class:`AuditConfig` is read by :func:`~explicable_jax.app.audit.audit`, by
``explicable-jax audit`` (its options, their help and defaults are built from
the fields) and by the equivalent command written into the report
(:func:`equivalent_command`). A new setting is one field here.
"""
from __future__ import annotations

import dataclasses
import os
import shlex
from typing import Any

from explicable_jax import _validation, conventions
from explicable_jax.app import _options
from explicable_jax.app._options import setting
from explicable_jax.app.audit.section import section_names

__all__ = ["AuditConfig", "SIMILARITIES", "DEFAULT_CORRUPTIONS", "check_similarity",
           "equivalent_command"]

SIMILARITIES = ("ekl", "ihl", "chl")
DEFAULT_CORRUPTIONS = ("gaussian_noise", "shot_noise", "defocus_blur", "contrast",
                       "brightness")


def _operators() -> tuple[str, ...]:
  from explicable_jax import mutation
  return mutation.operator_names()


def _corruptions() -> tuple[str, ...]:
  from explicable_jax import robustness
  return robustness.CORRUPTIONS


def _logit_scores() -> tuple[str, ...]:
  from explicable_jax.detection import scores
  return scores.score_names()


_LISTS = ("classes", "rates", "scores", "noise", "fgsm", "corruptions", "severities",
          "sections")


@dataclasses.dataclass(frozen=True)
class AuditConfig:
  """The audit's settings; every default of the API, the CLI and the printed
  command. Lists are tuples (a list given is made a tuple); :meth:`validate`
  checks the whole.

  The fields, by section: the data (``dataset`` or ``data_file``,
  ``data_dir``, ``limit``, ``seed``); 1. mistakes (``classes``,
  ``similarity``, ``reference``); 2. error detection (``mutants``,
  ``operator``, ``rates``, ``coverage``, ``train_limit``, ``scores``,
  ``layer``); 3. reliance (``annotations``); 4. hesitation (``hardest``,
  ``layer``); 5. robustness (``noise``, ``fgsm``, ``corruptions``,
  ``severities``, ``adversarial_images``, ``adversarial_mutants``); 6.
  faithfulness (``faithfulness_images``); which sections run (``sections``).

  Example:
    >>> config = AuditConfig(dataset="cifar10", mutants=10)
    >>> config.mutants, config.rates  # audit(model, out, config) reads the same object
    (10, (0.005, 0.01, 0.02))
  """
  dataset: str | None = setting(None, "a dataset of the registry (its test set is halved)",
                                group="data")
  data_file: str | None = setting(None, "an .npz with x_train, y_train, x_test, y_test",
                                  flag="--data", group="data", metavar="FILE.npz")
  classes: tuple[str, ...] | None = setting(
      None, "comma-separated class names (default: the model's or the dataset's)", items=str)
  similarity: Any = setting(
      "ekl", "ekl (WordNet, from the class names), ihl or chl (CIFAR-10's human labels) or "
      "a (C, C) .npy file; from Python also a (C, C) array")
  annotations: str | None = setting(
      None, "an .npz whose 'mask' marks the features the model should not use")
  reference: Any = setting(
      None, "a second model folder for the hard/soft explicability scores (from Python "
      "also a model in memory)")
  layer: str | None = setting(
      None, "split point for conductance and insecurities (default: the last spatial one)")
  mutants: int = setting(20, "mutants for LCR")
  operator: str = setting("NAI", "mutation operator", choices=_operators)
  rates: tuple[float, ...] = setting(
      (0.005, 0.01, 0.02), "candidate mutation rates, the best chosen on the validation half",
      items=float)
  coverage: float = setting(0.9, "share of validation predictions each threshold accepts")
  train_limit: int = setting(5000, "training images for the conductance detector")
  scores: tuple[str, ...] = setting(
      (), "logit scores to show beside MSP (default: none)", items=str,
      choices=_logit_scores)
  hardest: int = setting(8, "hardest test images drawn with their insecurities")
  noise: tuple[float, ...] = setting((0.02, 0.05, 0.1),
                                     "Gaussian noise stddevs for inputs in [0, 1]", items=float)
  fgsm: tuple[float, ...] = setting((1 / 255, 2 / 255, 4 / 255),
                                    "FGSM epsilons for inputs in [0, 1]", items=float)
  corruptions: tuple[str, ...] = setting(DEFAULT_CORRUPTIONS, "corruptions", items=str,
                                         choices=_corruptions)
  severities: tuple[int, ...] = setting((1, 3, 5), "corruption severities (1-5)", items=int)
  adversarial_images: int = setting(
      200, "correctly classified test images attacked with FGSM (the largest --fgsm epsilon) "
      "and DeepFool, to measure how well LCR and MSP tell the adversarial inputs from normal "
      "ones (0: skip)")
  adversarial_mutants: int | None = setting(
      None, "mutants for the LCR of the adversarial inputs (default: --mutants, the "
      "error-detection section's ensemble)", parse=int)
  faithfulness_images: int = setting(32, "test images for the attribution sanity and "
                                     "faithfulness checks")
  sections: tuple[str, ...] | None = setting(
      None, "the sections to run (default: all)", items=str, choices=section_names)
  seed: int = setting(0, "seed of the split, mutants and noise")
  limit: int | None = setting(None, "first LIMIT images of each split only (quick checks)",
                              parse=int)
  data_dir: str | None = setting(None, "local data folder (default: $EXPLICABLE_JAX_DATA)")

  def __post_init__(self):
    for name in _LISTS:
      value = getattr(self, name)
      if name == "classes" and isinstance(value, str):
        raise TypeError(f"classes must be a sequence of names; got the string {value!r} "
                        "(on the command line: --classes a,b,c).")
      if isinstance(value, str):
        value = (value,)
      if value is not None and not isinstance(value, tuple):
        try:
          value = tuple(value)
        except TypeError:
          raise TypeError(f"{name} must be a sequence; got {type(value).__name__}.") from None
      object.__setattr__(self, name, value)
    self._check_settings()  # each setting when built; validate() adds the rules between them

  def validate(self) -> AuditConfig:
    """Checks every setting; returns ``self``.

    Raises:
      ValueError, FileNotFoundError: naming the setting, what was given and
        what was expected.
    """
    if (self.dataset is None) == (self.data_file is None):
      raise ValueError(f"give exactly one of dataset or data_file; got dataset="
                       f"{self.dataset!r}, data_file={self.data_file!r}.")
    self._check_settings()
    if self.adversarial_mutants is not None and self.adversarial_images == 0:
      raise ValueError(
          "adversarial_mutants is read only when the robustness section attacks images; "
          "got adversarial_mutants with adversarial_images=0, which skips the attacks: "
          "drop adversarial_mutants (--adversarial-mutants), or give adversarial_images.")
    if self.annotations is not None and not os.path.exists(self.annotations):
      raise FileNotFoundError(f"annotations file {self.annotations!r} does not exist.")
    check_similarity(self.similarity, self.dataset)
    return self

  def _check_settings(self) -> None:
    """Every setting on its own (rules between settings, the data source and
    files are :meth:`validate`'s: a config is often completed by overrides)."""
    from explicable_jax import robustness
    v = _validation
    if self.classes is not None:
      v.check_class_names("classes", self.classes)
    v.check_choice("operator", self.operator, _operators())
    v.check_positive("mutants", self.mutants, integer=True)
    v.check_positive("train_limit", self.train_limit, integer=True)
    v.check_positive("hardest", self.hardest, integer=True)
    v.check_positive("faithfulness_images", self.faithfulness_images, integer=True)
    v.check_nonnegative("adversarial_images", self.adversarial_images, integer=True)
    if self.adversarial_mutants is not None:
      v.check_positive("adversarial_mutants", self.adversarial_mutants, integer=True)
    v.check_fraction("coverage", self.coverage)
    if not 0 < self.coverage < 1:
      raise ValueError(f"coverage must lie strictly between 0 and 1; got {self.coverage}.")
    for r in self.rates:
      v.check_fraction("rates", r, positive=True)
    if not self.rates:
      raise ValueError(f"rates must be one or more fractions in (0, 1]; got "
                       f"{list(self.rates)}.")
    for s in self.noise:
      conventions.check_perturbation("noise", s, allow_zero=False)
    for e in self.fgsm:
      conventions.check_perturbation("fgsm", e, allow_zero=False)
    for c in self.corruptions:
      v.check_choice("corruptions", c, robustness.CORRUPTIONS)
    for s in self.severities:
      v.check_choice("severities", s, robustness.SEVERITIES)
    for s in self.scores:
      v.check_choice("scores", s, _logit_scores())
    if self.sections is not None:
      if not self.sections:
        raise ValueError(f"sections must name one or more of {', '.join(section_names())}; "
                         "got none.")
      for s in self.sections:
        v.check_choice("sections", s, section_names())
    v.check_seed("seed", self.seed)
    if self.limit is not None:
      v.check_positive("limit", self.limit, integer=True)
    if isinstance(self.similarity, str) and self.similarity not in SIMILARITIES \
        and not self.similarity.endswith(".npy"):
      check_similarity(self.similarity, None)  # a misspelt name; files are checked at use


def check_similarity(similarity, dataset: str | None) -> None:
  """Raises unless ``similarity`` names a matrix the audit can build for
  ``dataset``: ``ekl``, ``ihl`` or ``chl`` (these two for CIFAR-10 only), an
  existing ``.npy`` file, or an array (checked once the model is known)."""
  if not isinstance(similarity, str):
    return
  if similarity not in SIMILARITIES:
    if not similarity.endswith(".npy"):
      raise ValueError(f"similarity must be one of {', '.join(SIMILARITIES)} or a path to a "
                       f"(C, C) .npy file; got {similarity!r}.")
    if not os.path.exists(similarity):
      raise FileNotFoundError(f"similarity file {similarity!r} does not exist.")
  if similarity in ("ihl", "chl") and dataset != "cifar10":
    raise ValueError(f"similarity={similarity!r} comes from CIFAR-10's human labels and needs "
                     f"dataset='cifar10'; got dataset={dataset!r}. Use 'ekl' or a .npy file.")


def equivalent_command(model_path: str, config: AuditConfig, out: str) -> str:
  """The ``explicable-jax audit`` command line that reruns ``config`` on the
  model folder ``model_path`` into ``out``: every setting the command line can
  express (a matrix or a model given in memory cannot)."""
  if not isinstance(config, AuditConfig):
    raise TypeError(f"config must be an AuditConfig; got {type(config).__name__}.")
  argv = ["explicable-jax", "audit", "--model", model_path, *_options.to_argv(config),
          "--out", out]
  return shlex.join(argv)
