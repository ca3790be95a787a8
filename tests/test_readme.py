"""The README's code must run as printed."""
import pathlib
import re

import numpy as np
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


@pytest.fixture(scope="module")
def methods(tour, wordnet_available):
  """The namespace after every README example ran, in order."""
  namespace, folder = tour
  namespace = dict(namespace)
  with pytest.MonkeyPatch.context() as mp:
    mp.chdir(folder)
    for block in _blocks()[1:]:
      exec(compile(block, "README.md", "exec"), namespace)
  return namespace


def test_readme_has_one_example_per_method():
  text = (ROOT / "README.md").read_text()
  assert len(_blocks()) >= 5
  for heading in ("### 1. Explicable", "### 2. Error detection", "### 3. Right for the Right",
                  "### 4. Deliberative"):
    section = text.split(heading, 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
    assert "```python" in section, heading


def test_readme_error_detection_example(methods):
  from explicable_jax import metrics
  lcr, wrong = methods["lcr"], methods["wrong"]
  assert lcr.shape == wrong.shape
  # A rate over the example's 10 mutants, and higher for wrong predictions.
  np.testing.assert_allclose(lcr * 10, np.round(lcr * 10), atol=1e-6)
  assert lcr[wrong].mean() > lcr[~wrong].mean()
  scores = methods["scores"]
  assert scores.shape == wrong.shape
  # The detector ranks the errors it was trained on better than chance.
  assert metrics.auroc(scores, wrong) > 0.6


def test_readme_rrr_and_deliberative_examples(methods):
  assert methods["saliency"].shape == (16, 8, 8, 1)
  found = methods["found"]
  assert len(found) == 4 and all(items for items in found)
  assert all(d["mask"].shape == (8, 8) for items in found for d in items)


def test_api_reference_is_up_to_date():
  import importlib.util
  spec = importlib.util.spec_from_file_location("make_api", ROOT / "docs" / "make_api_reference.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  assert (ROOT / "docs" / "API.md").read_text() == module.render(), (
      "run python docs/make_api_reference.py")
  for name in ("make_weighted_loss", "label_change_rate", "make_rrr_loss", "insecurities",
               "run_demo", "HtmlReport"):
    assert f"`{name}`" in module.render(), name


@pytest.mark.parametrize("kind", ["nnx", "linen", "functions"])
def test_readme_method_examples_run_on_a_users_model(kind, tour, wordnet_available):
  """The four method examples, unchanged, on a user's NNX, linen and
  plain-function CNN (tests/test_classifier.py) in place of the zoo's."""
  import jax
  from test_classifier import MAKERS
  namespace, folder = tour
  namespace = dict(namespace)
  training = namespace["training"]
  user = MAKERS[kind]()
  state, _ = training.fit(training.create_train_state(jax.random.key(1), user, namespace["opt"]),
                       namespace["train"], train_step=namespace["step"], epochs=3,
                       batch_size=64, progress=False)
  namespace["clf"] = state.classifier
  namespace["layer"] = state.classifier.layers[0]
  with pytest.MonkeyPatch.context() as mp:
    mp.chdir(folder)
    for block in _blocks()[1:5]:
      exec(compile(block, "README.md", "exec"), namespace)
  assert int(namespace["tuned"].step) > 0
  assert namespace["lcr"].shape == namespace["wrong"].shape
  assert 0 < namespace["lcr"].max() <= 1
  assert namespace["saliency"].shape == (16, 8, 8, 1)
  assert len(namespace["found"]) == 4 and all(namespace["found"])


def test_no_library_module_imports_the_app_layer():
  import ast
  offenders = []
  for path in (ROOT / "explicable_jax").rglob("*.py"):
    if "app" in path.relative_to(ROOT / "explicable_jax").parts or path.name == "__main__.py":
      continue
    for node in ast.walk(ast.parse(path.read_text())):
      names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
               [f"{node.module}.{a.name}" for a in node.names]
               if isinstance(node, ast.ImportFrom) and node.module else [])
      offenders += [f"{path.name}: {n}" for n in names if n.startswith("explicable_jax.app")]
  assert not offenders, offenders
