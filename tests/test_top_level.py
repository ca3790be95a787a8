"""The curated top level (explicable_jax/__init__.py): each headline name is
its subpackage's own object, and ``import explicable_jax`` imports none of
them (nor jax)."""
import importlib
import subprocess
import sys

import pytest

import explicable_jax


def test_all_lists_the_subpackages_then_the_headlines():
  assert explicable_jax.__all__ == [*explicable_jax._SUBPACKAGES, *explicable_jax._HEADLINES,
                                    "__version__"]
  assert sorted(dir(explicable_jax)) == sorted(explicable_jax.__all__)


@pytest.mark.parametrize("name", sorted(explicable_jax._HEADLINES))
def test_headline_is_its_subpackages_public_object(name):
  module = importlib.import_module(f"explicable_jax.{explicable_jax._HEADLINES[name]}")
  assert name in module.__all__
  assert getattr(explicable_jax, name) is getattr(module, name)


def test_unknown_name_raises_attribute_error():
  with pytest.raises(AttributeError, match="no_such_name"):
    explicable_jax.no_such_name  # noqa: B018


def test_import_is_lazy():
  code = ("import sys, explicable_jax; "
          "print(sorted(m for m in ('jax', 'explicable_jax.training', 'explicable_jax.metrics') "
          "if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=True)
  assert out.stdout.strip() == "[]"


def test_every_long_library_module_says_why_it_is_one_module():
  """Issue 31's rule: no library module over about 500 lines without the
  reason written at its top (``One module, not a package (over 500 lines):``
  in its docstring), so a module that grows past it is either split or
  explained."""
  import ast
  import pathlib
  root = pathlib.Path(__file__).resolve().parent.parent / "explicable_jax"
  unexplained = []
  for path in sorted(root.rglob("*.py")):
    text = path.read_text()
    if text.count("\n") <= 500:
      continue
    doc = ast.get_docstring(ast.parse(text)) or ""
    if "One module, not a package (over 500 lines):" not in doc:
      unexplained.append(f"{path.relative_to(root.parent)} ({text.count(chr(10))} lines)")
  assert not unexplained, unexplained
