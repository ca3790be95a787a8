"""MkDocs hooks (mkdocs.yml's ``hooks:``): pages generated at build time.

* ``quickstart.md``: README.md's "Two commands" and "A short tour of the API"
  sections, so the site and the README cannot disagree (tests/test_readme.py
  runs the README's code);
* ``notebook.md``: experiments/quickstart.ipynb, executed at build time
  (nbclient, a fresh kernel) and shown with its outputs; a failing cell fails
  the build. ``EXPLICABLE_JAX_DOCS_EXECUTE_NOTEBOOK=0`` skips the run;
* ``reference/<module>.md``: one API page per public module, rendered by
  mkdocstrings from the docstrings; the same module list as docs/API.md.
"""
from __future__ import annotations

import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART_SECTIONS = ("## Two commands", "## A short tour of the API")
# README links to files of the repository, and where they live on the site.
LINKS = {"experiments/quickstart.ipynb": "notebook.md", "docs/API.md": "API.md"}
# Set to 0 for a quick local build that shows the notebook without running it.
EXECUTE_ENV = "EXPLICABLE_JAX_DOCS_EXECUTE_NOTEBOOK"


def _modules() -> list[str]:
  sys.path.insert(0, os.path.join(ROOT, "docs"))
  try:
    import make_api_reference
  finally:
    sys.path.pop(0)
  return make_api_reference.modules()


def _section(text: str, heading: str) -> str:
  start = text.index(heading + "\n")
  end = text.find("\n## ", start + len(heading))
  return text[start:end if end >= 0 else len(text)].strip() + "\n"


def _relink(markdown: str) -> str:
  """Links to repository files: to their page where the site has one, else
  plain text (the site holds no copy of the repository)."""
  def one(m):
    label, target = m.group(1), m.group(2)
    if re.match(r"[a-z]+://|#|mailto:", target):
      return m.group(0)
    return f"[{label}]({LINKS[target]})" if target in LINKS else label
  return re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", one, markdown)


def _demote(markdown: str) -> str:
  """Every heading one level down (``#`` comments inside code fences kept)."""
  out, fenced = [], False
  for line in markdown.split("\n"):
    if line.startswith("```"):
      fenced = not fenced
    elif not fenced and re.match(r"#+ ", line):
      line = "#" + line
    out.append(line)
  return "\n".join(out)


def quickstart_page() -> str:
  with open(os.path.join(ROOT, "README.md")) as f:
    readme = f.read()
  body = "\n".join(_section(readme, h) for h in QUICKSTART_SECTIONS)
  return ("# Quickstart\n\nFrom the README (tests/test_readme.py runs its code as printed).\n\n"
          + _relink(body))


def _executed(path: str):
  """The notebook at ``path`` run top to bottom in a fresh kernel (nbclient,
  as tests/test_notebook.py runs it), in a temporary folder; a failing cell
  fails the build, naming the cell."""
  import tempfile

  import nbclient
  import nbformat
  nb = nbformat.read(path, as_version=4)
  with tempfile.TemporaryDirectory(prefix="explicable_jax_docs_nb_") as folder:
    nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": folder}}).execute()
  return nb


def _text(value) -> str:
  return "".join(value) if isinstance(value, list) else value


def _outputs(cell) -> list[str]:
  """A code cell's outputs as Markdown: printed text in a plain block, PNG
  figures inline (data URIs: the site needs no extra files); stderr (the
  environment's warnings) is left out."""
  parts = []
  for out in cell.get("outputs", []):
    data = out.get("data", {})
    if out.get("output_type") == "stream":
      if out.get("name") == "stderr":  # warnings of the environment, not results
        continue
      text = _text(out.get("text", ""))
    elif "image/png" in data:
      png = _text(data["image/png"]).replace("\n", "")
      parts.append(f"![output](data:image/png;base64,{png})\n")
      continue
    else:
      text = _text(data.get("text/plain", ""))
    if text.strip():
      parts.append(f"```text\n{text.rstrip()}\n```\n")
  return parts


def notebook_page() -> str:
  path = os.path.join(ROOT, "experiments", "quickstart.ipynb")
  execute = os.environ.get(EXECUTE_ENV, "1") != "0"
  if execute:
    nb = _executed(path)
  else:
    with open(path) as f:
      nb = json.load(f)
  how = ("executed when this site was built, with its outputs" if execute else
         f"shown without its outputs (built with {EXECUTE_ENV}=0)")
  parts = ["# Quickstart notebook\n",
           f"`experiments/quickstart.ipynb`, {how}: run it yourself with "
           "`jupyter lab experiments/quickstart.ipynb`, or in Colab. "
           "tests/test_notebook.py also executes it top to bottom in CI.\n"]
  for cell in nb["cells"]:
    source = _text(cell["source"])
    if cell["cell_type"] == "markdown":
      parts.append(_relink(_demote(source)) + "\n")
    elif cell["cell_type"] == "code":
      parts.append(f"```python\n{source.rstrip()}\n```\n")
      parts.extend(_outputs(cell))
  return "\n".join(parts)


def reference_page(module: str) -> str:
  return f"# `{module}`\n\n::: {module}\n    options:\n      show_root_heading: false\n"


def rst_simple_table(doc: str) -> str:
  """The first RST simple table of ``doc`` (two columns) as a Markdown table."""
  lines = doc.split("\n")
  rules = [i for i, line in enumerate(lines) if re.fullmatch(r"\s*=+\s+=+\s*", line)]
  start, end = rules[0], rules[-1]
  split = lines[start].index(" ", lines[start].index("="))
  split = len(lines[start]) - len(lines[start][split:].lstrip())
  rows: list[list[str]] = []
  for line in lines[start + 1:end]:
    if line.strip() and set(line.strip()) <= {"=", " "}:
      continue
    left, right = line[:split].strip(), line[split:].strip()
    if left or not rows:
      rows.append([left, right])
    else:
      rows[-1][1] += " " + right
  md = lambda text: re.sub(r":[a-z]+:`~?([^`]+)`", r"`\1`", text.replace("``", "`"))
  if len(rules) == 3:  # a header row between the first two rules
    head, body = rows[0], rows[1:]
  else:
    head, body = ["", ""], rows
  out = [f"| {md(head[0])} | {md(head[1])} |", "|---|---|"]
  out += [f"| {md(a)} | {md(b)} |" for a, b in body]
  return "\n".join(out) + "\n"


MARKERS = {
    "<!-- the conventions table -->": "explicable_jax.conventions",
    "<!-- the module map -->": "explicable_jax",
}


def on_page_markdown(markdown, page, config, files, **kwargs):
  """Tables written once, in a module's docstring, shown on a page."""
  import importlib
  import inspect
  for marker, module in MARKERS.items():
    if marker in markdown:
      doc = inspect.getdoc(importlib.import_module(module)) or ""
      markdown = markdown.replace(marker, rst_simple_table(doc))
  return markdown


def on_config(config, **kwargs):
  pages = [{name: f"reference/{name}.md"} for name in _modules()]
  nav = []
  for item in config["nav"]:
    if isinstance(item, dict) and "API reference" in item:
      item = {"API reference": pages}
    nav.append(item)
  config["nav"] = nav
  return config


def on_files(files, config, **kwargs):
  from mkdocs.structure.files import File
  files.append(File.generated(config, "quickstart.md", content=quickstart_page()))
  files.append(File.generated(config, "notebook.md", content=notebook_page()))
  for name in _modules():
    files.append(File.generated(config, f"reference/{name}.md", content=reference_page(name)))
  return files


_AUTOREF = re.compile(r'<autoref\b[^>]*?\bidentifier="([^"]*)"[^>]*>(.*?)</autoref>', re.S)
_PYTHON_PATH = re.compile(r"[A-Za-z_][\w.]*")


def _literal_brackets(html: str) -> str:
  """Doctest lines in docstrings (``p["dense"]["kernel"]``, ``found[0][0]``) and
  Iverson brackets in formulas read as Markdown reference links
  ``[text][identifier]``; mkdocs-autorefs (>= 1.4) then warns that no object
  of that name exists, which fails the strict build. Only a Python path can
  name an object, so the others are put back as the text they were."""
  import html as html_lib

  def keep(m):
    ident = html_lib.unescape(m.group(1))
    if _PYTHON_PATH.fullmatch(ident):
      return m.group(0)
    return f"[{m.group(2)}][{m.group(1)}]"

  return _AUTOREF.sub(keep, html)


from mkdocs.plugins import event_priority  # noqa: E402


@event_priority(0)  # before mkdocs-autorefs' on_env (-50), which resolves the references
def on_env(env, config, files, **kwargs):
  for file in files:
    if file.page is not None and file.page.content:
      file.page.content = _literal_brackets(file.page.content)
  return env
