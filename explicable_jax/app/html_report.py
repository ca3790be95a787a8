"""A self-contained HTML report: headings, paragraphs, tables and figures.

Figures are embedded as base64 PNG ``data:`` URIs and the only links are
anchors inside the page, so the file can be mailed, attached to an issue or
opened offline. Used by ``explicable-jax demo`` (:mod:`explicable_jax.app.demo`).

    report = HtmlReport("My run")
    report.section("results", "Results")
    report.paragraph("Accuracy of the two models.")
    report.table(["model", "accuracy"], [["plain", "0.97"]])
    report.figure(fig, "Confusion matrices.")     # a matplotlib Figure
    report.write("report.html")
"""
from __future__ import annotations

import base64
import html
import io
import os
import re
from collections.abc import Sequence

__all__ = [
    "HtmlReport",
]

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 62rem; margin: 2rem auto;
       padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 1px solid #ccc; margin-top: 2.2rem; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.92rem; }
th, td { border: 1px solid #bbb; padding: 0.25rem 0.6rem; text-align: left; }
th { background: #f0f0f0; } figure { margin: 1rem 0; } img { max-width: 100%; }
figcaption { font-size: 0.9rem; color: #444; } .note { color: #555; font-size: 0.9rem; }
nav ul { columns: 2; }
"""


class HtmlReport:
  """Collects the parts of a report in order; :meth:`write` renders one file."""

  def __init__(self, title: str, subtitle: str = ""):
    self.title = title
    self.subtitle = subtitle
    self._parts: list[str] = []
    self._sections: list[tuple[str, str]] = []

  def section(self, anchor: str, heading: str) -> None:
    """Starts a section; it gets an entry (an in-page link) in the contents."""
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", anchor):
      raise ValueError(f"anchor must be lowercase letters, digits, '-' or '_' "
                       f"(an HTML id); got {anchor!r}.")
    if anchor in dict(self._sections):
      raise ValueError(f"anchor {anchor!r} is already a section of this report.")
    self._sections.append((anchor, heading))
    self._parts.append(f'<h2 id="{anchor}">{html.escape(heading)}</h2>')

  def paragraph(self, text: str, *, note: bool = False) -> None:
    """A paragraph of plain text (escaped)."""
    cls = ' class="note"' if note else ""
    self._parts.append(f"<p{cls}>{html.escape(text)}</p>")

  def table(self, header: Sequence[str], rows: Sequence[Sequence], caption: str = "") -> None:
    """A table; cells are formatted with ``str`` (floats with 4 digits)."""
    for i, r in enumerate(rows):
      if len(r) != len(header):
        raise ValueError(f"rows[{i}] has {len(r)} cells; the header has {len(header)} columns.")
    fmt = lambda c: f"{c:.4f}" if isinstance(c, float) else str(c)  # noqa: E731
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(c))}</td>" for c in r) + "</tr>"
                   for r in rows)
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    self._parts.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

  def figure(self, fig, caption: str = "", *, dpi: int = 100) -> None:
    """Embeds a matplotlib figure as a PNG and closes it."""
    import matplotlib.pyplot as plt
    if not hasattr(fig, "savefig"):
      raise TypeError(f"fig must be a matplotlib Figure (e.g. ax.figure); got "
                      f"{type(fig).__name__}.")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    self.png(buf.getvalue(), caption)

  def png(self, data: bytes, caption: str = "") -> None:
    """Embeds PNG bytes."""
    if not isinstance(data, (bytes, bytearray)):
      raise TypeError(f"data must be the bytes of a PNG file; got {type(data).__name__}"
                      + (" (a path? pass open(path, 'rb').read())" if isinstance(data, str)
                         else "") + ".")
    if not data.startswith(b"\x89PNG"):
      raise ValueError("data must be the bytes of a PNG file.")
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    alt = html.escape(caption or "figure", quote=True)
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    self._parts.append(f'<figure><img src="{uri}" alt="{alt}">{cap}</figure>')

  def render(self) -> str:
    """The whole page as a string."""
    toc = "".join(f'<li><a href="#{a}">{html.escape(h)}</a></li>' for a, h in self._sections)
    sub = f'<p class="note">{html.escape(self.subtitle)}</p>' if self.subtitle else ""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1>{sub}"
            f"<nav><h3>Contents</h3><ul>{toc}</ul></nav>"
            + "\n".join(self._parts) + "</body></html>\n")

  def write(self, path: str) -> str:
    """Writes the page to ``path`` (folders created); returns the absolute path."""
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
      f.write(self.render())
    return path
