"""The audit's ``report.html``: the summary first, then each section's part, then the settings."""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

from explicable_jax.app.audit.section import SECTIONS, Section

__all__ = ["write_report"]


def write_report(res: Mapping, out: str, figures: Mapping[str, object],
                 sections: Sequence[Section] | None = None) -> str:
  """Renders ``res`` (``results.json``'s dict) into ``out/report.html``.

  Args:
    res: the results: ``summary``, one entry per section, ``settings``,
      ``data``, ``command``, ``date``, ``wall_seconds``, ``note``.
    out: the output folder.
    figures: each section's figure (or ``None``) by its name.
    sections: the sections to render, in order (default: those of
      :data:`~explicable_jax.app.audit.SECTIONS` present in ``res``).

  Returns:
    The report's absolute path.
  """
  from explicable_jax.app.html_report import HtmlReport
  if sections is None:
    sections = [s for s in SECTIONS if s.name in res]
  s = res["settings"]
  page = HtmlReport("explicable_jax audit",
                    f"{res['date']}; model {s['model']}; data: {res['data'].rstrip('.')}; "
                    f"{res['wall_seconds']:.0f} s on {s['backend']}")
  page.section("summary", "Summary")
  if res.get("note"):
    page.paragraph(res["note"])
  page.table(["question", "answer"], [[q, a] for q, a in res["summary"].items()])
  page.paragraph("Command: " + res["command"], note=True)
  for i, section in enumerate(sections, 1):
    page.section(section.name, f"{i}. {section.title}")
    section.report(page, res[section.name], figures.get(section.name))
  page.section("settings", "Settings")
  page.table(["setting", "value"], [[k, json.dumps(v)] for k, v in s.items()])
  page.paragraph(f"Data: {res['data']}.", note=True)
  return page.write(os.path.join(out, "report.html"))
