"""Host-side plots of the library's results (matplotlib, imported lazily).

Every function draws on a matplotlib ``Axes`` (a new figure when ``ax`` is
None) from numpy arrays and returns the ``Axes``; nothing here is jitted or
traced, and no core module imports this one. Used by the demo, the ``detect``
command and the experiment scripts:

* :func:`heatmap`: a confusion or class-similarity matrix with its entries;
* :func:`attribution_overlay`: an attribution map over its image;
* :func:`insecurity_outline`: an insecurity region outlined on its image;
* :func:`roc_curves` and :func:`risk_coverage_curves`: error-detection
  curves of several scores on the same predictions.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import os

import numpy as np

from explicable_jax import _paths, _validation, conventions

__all__ = ["heatmap", "attribution_overlay", "insecurity_outline", "roc_curves",
           "risk_coverage_curves", "new_axes", "save"]


def new_axes(ax=None, *, figsize=(4.6, 4.2)):
  """``ax``, or the axes of a new figure of ``figsize``."""
  if ax is not None:
    if not hasattr(ax, "figure") or not hasattr(ax, "plot"):
      raise TypeError(f"ax must be matplotlib Axes (or None for a new figure); got "
                      f"{type(ax).__name__} {ax!r:.40}.")
    return ax
  import matplotlib.pyplot as plt
  _, ax = plt.subplots(figsize=figsize)
  return ax


def save(ax, path: str, *, dpi: int = 110) -> str:
  """Writes the figure of ``ax`` to ``path`` (tight layout), closes it and
  returns the path written (``path`` with matplotlib's default suffix,
  ``.png``, when it has none)."""
  import matplotlib.pyplot as plt
  if not hasattr(ax, "figure"):
    raise TypeError(f"ax must be the matplotlib Axes a viz function returned; got "
                    f"{type(ax).__name__}.")
  _paths.check_file("path", path)
  _validation.check_positive("dpi", dpi)
  path = os.fspath(path)
  suffix = os.path.splitext(path)[1].lstrip(".").lower()
  formats = ax.figure.canvas.get_supported_filetypes()
  if suffix and suffix not in formats:
    raise ValueError(f"path must end in an image format matplotlib writes "
                     f"({', '.join('.' + f for f in sorted(formats))}); got {path!r}.")
  if os.path.dirname(path) and not _paths.is_uri(path):  # as the other writers do
    os.makedirs(os.path.dirname(path), exist_ok=True)
  if not os.path.splitext(path)[1]:  # matplotlib adds its default format's suffix
    path = f"{path}.{plt.rcParams['savefig.format']}"
  fig = ax.figure
  fig.tight_layout()
  fig.savefig(path, dpi=dpi)
  plt.close(fig)
  return path


def _matrix(name, m, rank=2):
  m = np.asarray(m, dtype=np.float64)
  if m.ndim != rank:
    raise ValueError(f"{name} must be a rank-{rank} array; got shape {m.shape}.")
  if not np.all(np.isfinite(m)):
    raise ValueError(f"{name} must be finite; it holds NaN or inf.")
  return m


def heatmap(matrix, labels: Sequence[str] | None = None, *, ax=None, title: str = "",
            fmt: str = "{:.2f}", annotate: bool | None = None, vmin=None, vmax=None,
            cmap: str = "viridis"):
  """A matrix as an image, rows = true class, columns = the other axis
  (prediction or similar class), each entry written in it when there are at
  most 10 rows (``annotate`` forces either way).

  Its keyword-only parameters are matplotlib's (``ax``, ``vmin``, ``vmax``, ``cmap``) and the
  title and annotation format, each optional.
  """
  m = _matrix("matrix", matrix)
  if annotate is not None:
    conventions.check_flag("annotate", annotate)
  try:
    ok = "{" in fmt and bool(fmt.format(0.5))
  except (ValueError, IndexError, KeyError, AttributeError, TypeError):
    ok = False
  if not ok:
    raise ValueError(f"fmt must be a str.format pattern for one number, such as '{{:.2f}}'; got "
                     f"{fmt!r}.")
  if vmin is not None and vmax is not None and not vmin <= vmax:
    raise ValueError(f"vmin must be at most vmax (the colour scale's ends); got vmin={vmin!r}, "
                     f"vmax={vmax!r}.")
  if labels is not None and len(labels) != m.shape[0]:
    raise ValueError(f"labels must name the {m.shape[0]} rows; got {len(labels)} names.")
  ax = new_axes(ax, figsize=(4.8, 4.4))
  top = float(m.max()) if vmax is None else vmax
  ax.imshow(m, cmap=cmap, vmin=vmin, vmax=vmax)
  if labels is not None:
    ax.set_xticks(range(m.shape[1]), labels if m.shape[1] == len(labels) else None,
                  rotation=90, fontsize=7)
    ax.set_yticks(range(m.shape[0]), labels, fontsize=7)
  if title:
    ax.set_title(title, fontsize=9)
  if annotate if annotate is not None else m.shape[0] <= 10:
    for i in range(m.shape[0]):
      for j in range(m.shape[1]):
        ax.text(j, i, fmt.format(m[i, j]), ha="center", va="center", fontsize=6,
                color="w" if m[i, j] < 0.6 * top else "k")
  return ax


def _image(name, image):
  img = np.asarray(image)
  if img.ndim == 3 and img.shape[-1] == 1:
    img = img[..., 0]
  if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[-1] not in (3, 4)):
    raise ValueError(f"{name} must be an (H, W), (H, W, 1) or (H, W, 3) image; got shape "
                     f"{np.shape(image)}.")
  if img.dtype != np.uint8:
    # The images convention (one example as a batch of one): floats on the
    # 0..255 scale are refused, not drawn clipped to white; ints become [0, 1].
    one = img[None, ..., None] if img.ndim == 2 else img[None]
    img = np.asarray(conventions.check_images(name, one, strict_range=False))[0]
    img = np.clip(img[..., 0] if img.shape[-1] == 1 else img, 0.0, 1.0).astype(np.float64)
  return img


@conventions.boundary()
def attribution_overlay(image, attribution, *, ax=None, title: str = "",
                        alpha: float = 0.55, signed: bool = True):
  """``attribution`` (``(H, W)``, or ``(H, W, C)`` summed over channels) over
  ``image``: red where it is positive, blue where negative (``signed``), or
  its magnitude alone; scaled by its largest magnitude."""
  img = _image("image", image)
  a = np.asarray(attribution, dtype=np.float64)
  if a.ndim == 3:
    a = a.sum(-1)
  conventions.check_finite("attribution", a)
  _validation.check_fraction("alpha", alpha)
  if a.shape != img.shape[:2]:
    raise ValueError(f"attribution must cover the image's {img.shape[:2]} pixels; got shape "
                     f"{np.shape(attribution)}.")
  ax = new_axes(ax, figsize=(2.4, 2.6))
  ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
  top = float(np.abs(a).max()) or 1.0
  if signed:
    ax.imshow(a / top, cmap="bwr", vmin=-1, vmax=1, alpha=alpha)
  else:
    ax.imshow(np.abs(a) / top, cmap="magma", vmin=0, vmax=1, alpha=alpha)
  ax.set_title(title, fontsize=8)
  ax.axis("off")
  return ax


def _check_color(name: str, value) -> None:
  """A matplotlib colour ('yellow', '#ffcc00', (1, 0.8, 0)); a misspelt name
  would be read letter by letter by ``contour`` (``'yelow'`` as ``'y'``)."""
  from matplotlib import colors as mcolors
  if not mcolors.is_color_like(value):
    raise ValueError(f"{name} must be a matplotlib colour (a name such as 'yellow', "
                     f"'#ffcc00', or an RGB tuple); got {value!r}.")


@conventions.boundary(mask="mask")
def insecurity_outline(image, mask, *, ax=None, title: str = "", color: str = "yellow",
                       dim: float = 0.6):
  """The region ``mask`` (``(H, W)`` bool) outlined on ``image``, the rest of
  the image dimmed by ``dim`` (0 = not at all, 1 = black)."""
  _validation.check_fraction("dim", dim)
  _check_color("color", color)
  img = _image("image", image)
  m = np.asarray(mask, bool)
  if m.shape != img.shape[:2]:
    raise ValueError(f"mask must cover the image's {img.shape[:2]} pixels; got shape "
                     f"{m.shape}.")
  ax = new_axes(ax, figsize=(2.4, 2.6))
  ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
  if dim:
    ax.imshow(np.where(m, 0.0, dim)[..., None] * np.array([0.0, 0.0, 0.0, 1.0]))
  if m.any() and not m.all():
    ax.contour(m.astype(float), levels=[0.5], colors=color, linewidths=1.2)
  ax.set_title(title, fontsize=8)
  ax.axis("off")
  return ax


_COLOURS = [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19]


def _curve_axes(ax):
  import matplotlib.pyplot as plt
  ax = new_axes(ax)
  ax.set_prop_cycle(color=plt.cm.tab20(np.linspace(0, 1, 20))[_COLOURS])
  return ax


@conventions.boundary(scores="scores{}", is_wrong="mask")
def roc_curves(scores: Mapping[str, np.ndarray], is_wrong, *, ax=None, title: str = ""):
  """ROC curve of each error score (higher = more likely wrong) on the same
  predictions, its AUROC in the legend, and the chance diagonal."""
  from explicable_jax import metrics
  from explicable_jax.detection import roc_curve
  ax = _curve_axes(ax)
  for name, s in scores.items():
    fpr, tpr, _ = roc_curve(s, is_wrong)
    ax.plot(fpr, tpr, lw=1.2, label=f"{name} ({metrics.auroc(s, is_wrong):.3f})")
  ax.plot([0, 1], [0, 1], "k:", lw=0.8)
  ax.set(xlabel="false positive rate (right flagged)",
         ylabel="true positive rate (wrong flagged)", title=f"ROC {title}".strip())
  ax.legend(fontsize=7)
  return ax


@conventions.boundary(scores="scores{}", is_wrong="mask")
def risk_coverage_curves(scores: Mapping[str, np.ndarray], is_wrong, *, ax=None,
                         title: str = ""):
  """Selective risk against coverage for each error score (the least
  suspicious predictions kept first), its AURC in the legend, and the oracle
  that rejects exactly the wrong predictions first."""
  from explicable_jax import metrics
  ax = _curve_axes(ax)
  for name, s in scores.items():
    cov, risk = metrics.risk_coverage_curve(s, is_wrong)
    ax.plot(cov, risk, lw=1.2, label=f"{name} (AURC {metrics.aurc(s, is_wrong):.4f})")
  oracle = np.asarray(is_wrong, np.float64)
  cov, risk = metrics.risk_coverage_curve(oracle, is_wrong)
  ax.plot(cov, risk, "k:", lw=0.8, label="oracle")
  ax.set(xlabel="coverage (share of predictions kept)", ylabel="selective risk (error rate)",
         title=f"risk-coverage {title}".strip())
  ax.legend(fontsize=7)
  return ax
