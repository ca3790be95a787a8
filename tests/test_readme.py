"""The README's code must run as printed."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_readme_tour_runs(tmp_path, monkeypatch):
  text = (ROOT / "README.md").read_text()
  blocks = re.findall(r"```python\n(.*?)```", text, re.S)
  assert blocks, "README has no python example"
  monkeypatch.chdir(tmp_path)
  namespace = {}
  exec(compile(blocks[0], "README.md", "exec"), namespace)
  assert namespace["state"].step > 0
  assert (tmp_path / "runs" / "digits" / "metrics.jsonl").exists()


def test_readme_weighted_loss_snippet_runs(tmp_path, monkeypatch, wordnet_available):
  text = (ROOT / "README.md").read_text()
  blocks = re.findall(r"```python\n(.*?)```", text, re.S)
  monkeypatch.chdir(tmp_path)
  namespace = {}
  exec(compile(blocks[0], "README.md", "exec"), namespace)
  exec(compile(blocks[1], "README.md", "exec"), namespace)
  scores = namespace["metrics"].hard_soft_scores(namespace["preds"], namespace["test"].y,
                                                 namespace["ekl"])
  assert sum(scores["soft"].values()) == scores["num_common_mistakes"]
  assert int(namespace["tuned"].step) > 0
