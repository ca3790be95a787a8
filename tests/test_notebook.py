"""experiments/quickstart.ipynb runs top to bottom (nbclient, a fresh kernel)
and is what experiments/make_quickstart_notebook.py writes."""
import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "experiments" / "quickstart.ipynb"

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


def test_notebook_is_generated_from_its_script():
  spec = importlib.util.spec_from_file_location(
      "make_nb", ROOT / "experiments" / "make_quickstart_notebook.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  committed = nbformat.read(NOTEBOOK, as_version=4)
  built = module.build()
  assert [c.source for c in committed.cells] == [c.source for c in built.cells], (
      "run python experiments/make_quickstart_notebook.py")


def test_notebook_runs_top_to_bottom(tmp_path):
  nb = nbformat.read(NOTEBOOK, as_version=4)
  client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                   resources={"metadata": {"path": str(tmp_path)}})
  client.execute()  # raises CellExecutionError, naming the cell, if any cell fails
  outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                    for o in c.get("outputs", []))
  assert "AUROC of LCR" in outputs and "gradient share on swatch" in outputs
  assert "FGSM eps=0.1" in outputs
