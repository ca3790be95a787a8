"""The experiment-report helpers write what they say."""
import json

from explicable_jax.app import reporting


def test_markdown_table_and_results_files(tmp_path, capsys):
  table = reporting.markdown_table(["a", "b"], [[1, "x"], [2.5, "y"]])
  assert table == "| a | b |\n|---|---|\n| 1 | x |\n| 2.5 | y |"
  reporting.save_results(str(tmp_path / "out"), {"acc": 0.5}, [table, "note"])
  assert json.loads((tmp_path / "out" / "results.json").read_text()) == {"acc": 0.5}
  assert (tmp_path / "out" / "tables.md").read_text() == table + "\n\nnote\n"
  assert "| 2.5 | y |" in capsys.readouterr().out
