"""Local or remote paths (``gs://``, ``s3://``, ...): the one rule for workdirs.

A local path is made absolute; a URI is kept as it is (``os.path.abspath``
would turn ``gs://bucket/run`` into ``/cwd/gs:/bucket/run``). Both become an
``etils.epath.Path`` (orbax's own path type, so no new dependency), whose
``open``, ``exists``, ``mkdir`` and ``replace`` reach Cloud Storage and S3
through fsspec (``gcsfs`` / ``s3fs``) or TensorFlow's gfile, whichever is
installed. Object stores cannot append to a file, so :func:`append_line`
rewrites it there (metrics files are small); locally it appends.
"""
from __future__ import annotations

import os

from etils import epath

__all__ = [
    "append_line", "check_file", "check_folder", "check_npz", "is_uri", "resolve", "write_text",
]


def is_uri(path: str | os.PathLike) -> bool:
  """True for ``scheme://...`` paths (remote file systems)."""
  return "://" in os.fspath(path)


def resolve(path: str | os.PathLike) -> epath.Path:
  """``path`` as an ``epath.Path``: absolute if local, unchanged if a URI."""
  s = os.fspath(path)
  return epath.Path(s if is_uri(s) else os.path.abspath(s))


def write_text(path: str | os.PathLike, text: str) -> None:
  """Writes ``text`` to ``path`` through a temporary file and a rename, so a
  reader (or a run killed mid-write) never sees half a file."""
  path = resolve(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.parent / (path.name + ".tmp")
  tmp.write_text(text)
  tmp.replace(path)


def append_line(path: str | os.PathLike, line: str) -> None:
  """Appends ``line`` (ending in a newline) to ``path``."""
  path = resolve(path)
  if not is_uri(path):
    with open(os.fspath(path), "a") as f:
      f.write(line)
    return
  old = path.read_text() if path.exists() else ""
  path.write_text(old + line)


def check_folder(name: str, path: str | os.PathLike) -> None:
  """Raises ``NotADirectoryError`` when ``path`` (a folder to write into, which
  may not exist yet) names an existing file. Local paths only (a URI is
  checked by its file system when written)."""
  if not isinstance(path, (str, os.PathLike)):
    raise TypeError(f"{name} must be a folder path (str or os.PathLike); got "
                    f"{type(path).__name__} {path!r}.")
  s = os.fspath(path)
  if not s.strip():
    raise ValueError(f"{name} must name a folder; got an empty path {s!r} (it would write "
                     "into the current directory: pass the folder, e.g. 'runs/name').")
  if not is_uri(s) and os.path.exists(s) and not os.path.isdir(s):
    raise NotADirectoryError(
        f"{name} {s!r} is a file; expected a folder (an existing one, or one to create): "
        "choose another path.")
  if not is_uri(s):
    _check_parents(name, s)


def _check_parents(name: str, s: str) -> None:
  """Raises when the nearest existing parent of ``s`` is a file: the path
  lies under a file and can never be created."""
  parent = os.path.dirname(os.path.abspath(s))
  while parent and not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if parent and not os.path.isdir(parent):
    raise NotADirectoryError(f"{name} {s!r} lies under {parent!r}, which is a file, not a "
                             "folder: choose another path.")


def check_file(name: str, path: str | os.PathLike) -> None:
  """Raises when ``path`` (a file to write, which may not exist yet) is an
  existing folder, or lies under a file. Local paths only."""
  if not isinstance(path, (str, os.PathLike)):
    raise TypeError(f"{name} must be a file path (str or os.PathLike); got "
                    f"{type(path).__name__} {path!r}.")
  s = os.fspath(path)
  if not s.strip():
    raise ValueError(f"{name} must name a file; got an empty path {s!r}.")
  if is_uri(s):
    return
  if os.path.isdir(s):
    raise IsADirectoryError(f"{name} {s!r} is a folder; expected a file path to write (e.g. "
                            f"{os.path.join(s, 'metrics.jsonl')!r}).")
  _check_parents(name, s)


def check_npz(name: str, path: str | os.PathLike, what: str = "arrays") -> None:
  """Raises ``ValueError`` when ``path`` exists but is not an ``.npz`` file
  (a zip archive, as ``numpy.savez`` writes), before ``numpy.load`` reads it
  as a pickle. ``what`` names the arrays it must hold, for the message."""
  import zipfile
  s = os.fspath(path)
  if not is_uri(s) and os.path.isfile(s) and not zipfile.is_zipfile(s):
    raise ValueError(
        f"{name} {s!r} is not an .npz file; expected an .npz (numpy.savez) holding {what}.")


def load_npz(name: str, path: str | os.PathLike, keys: tuple[str, ...] = (), *,
             what: str = "arrays", fix: str = "") -> dict:
  """The arrays of the ``.npz`` file ``path`` (all of them, read now), the
  one reader of the package's ``.npz`` files: a file that is not an
  ``.npz``, a damaged one and one that lacks any of ``keys`` are refused with
  ``ValueError`` naming ``name``, the path and what it must hold (``fix``, if
  given, says how to mend it), never numpy's or zipfile's bare error."""
  import zipfile

  import numpy as np
  s = os.fspath(path)
  check_npz(name, s, what)
  try:
    with np.load(s, allow_pickle=False) as f:
      missing = [k for k in keys if k not in f.files]
      if missing:
        raise ValueError(
            f"{name} {s!r} must hold {what}; it lacks {', '.join(map(repr, missing))} (it holds "
            f"{', '.join(map(repr, f.files)) or 'nothing'}).{' ' + fix if fix else ''}")
      return {k: f[k] for k in f.files}
  except (zipfile.BadZipFile, EOFError, OSError, zipfile.LargeZipFile) as e:
    if isinstance(e, FileNotFoundError):
      raise
    raise ValueError(f"{name} {s!r} is damaged ({type(e).__name__}: {e}); expected an .npz "
                     f"holding {what}.{' ' + fix if fix else ''}") from None


def check_existing_file(name: str, path: str | os.PathLike, what: str) -> None:
  """Raises ``FileNotFoundError`` naming the argument when ``path`` (a file
  to read) does not exist, and ``IsADirectoryError`` when it is a folder.
  ``what`` says what the file holds, for the message."""
  if not isinstance(path, (str, os.PathLike)):
    raise TypeError(f"{name} must be a file path (str or os.PathLike); got "
                    f"{type(path).__name__} {path!r}.")
  s = os.fspath(path)
  if is_uri(s):
    return
  if os.path.isdir(s):
    raise IsADirectoryError(f"{name} {s!r} is a folder; expected a file holding {what}.")
  if not os.path.exists(s):
    raise FileNotFoundError(f"{name} {s!r} does not exist; expected a file holding {what} "
                            f"(the working directory is {os.getcwd()!r}).")
