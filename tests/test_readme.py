"""The README's code must run as printed."""
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _blocks():
  text = (ROOT / "README.md").read_text()
  blocks = re.findall(r"```python\n(.*?)```", text, re.S)
  assert blocks, "README has no python example"
  return blocks


@pytest.fixture(scope="module")
def tour(tmp_path_factory):
  """The namespace after the README's first example ran (in a temp folder)."""
  folder = tmp_path_factory.mktemp("tour")
  with pytest.MonkeyPatch.context() as mp:
    mp.chdir(folder)
    namespace = {}
    exec(compile(_blocks()[0], "README.md", "exec"), namespace)
  return namespace, folder


def test_readme_tour_runs(tour):
  namespace, folder = tour
  assert namespace["state"].step > 0
  assert (folder / "runs" / "digits" / "metrics.jsonl").exists()


def test_readme_weighted_loss_snippet_runs(tour, wordnet_available):
  namespace, folder = tour
  namespace = dict(namespace)
  with pytest.MonkeyPatch.context() as mp:
    mp.chdir(folder)
    exec(compile(_blocks()[1], "README.md", "exec"), namespace)
  scores = namespace["metrics"].hard_soft_scores(namespace["preds"], namespace["test"].y,
                                                 namespace["ekl"])
  assert sum(scores["soft"].values()) == scores["num_common_mistakes"]
  assert int(namespace["tuned"].step) > 0
