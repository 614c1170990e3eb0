"""Files and folders on local disk or object storage, one API for both.

Every path a run reads or writes goes through here, so that a workdir, a
corpus glob, a tokenizer or an ``init_from`` may be ``gs://bucket/...`` (or
any other URI ``etils.epath`` knows: ``s3://``, ``az://``) as well as a local
path. Local paths take the same ``os``/``shutil``/``open`` calls as before
(relative paths are made absolute against the current directory, ``~`` is
expanded), so nothing changes on a local disk; URIs go to ``etils.epath``,
which uses ``gcsfs`` (the ``gcs`` extra) for ``gs://``.

What object storage cannot do, and what is done instead:

- No rename: ``rename`` copies, then deletes (not atomic).
- No append: ``bert_jax.train.metrics_writer`` rewrites its files whole.
- No ``O_EXCL``: ``create_new`` uses a generation precondition
  (``ifGenerationMatch=0``, gcsfs's ``'xb'`` mode) on ``gs://``, which GCS
  applies atomically. Other URIs check, then write (best effort).
- Libraries that read or write only local files get local ones: a temporary
  copy (``local_copy``: tokenizers' vocab, sentencepiece's model), a cached
  copy (``cached_copy``: array_record shards, read many times), or a folder
  uploaded when done (``local_dir_for``: array_record's writer).
"""

from __future__ import annotations

import builtins
import contextlib
import glob as glob_lib
import hashlib
import importlib.util
import io
import json
import os
import shutil
import tempfile
from typing import IO, Any, Iterator

from etils import epath

# The URI schemes etils.epath can read and write (each needs its fsspec
# package: gcsfs for gs://, s3fs for s3://, adlfs for az://).
URI_SCHEMES = ('gs', 's3', 'az', 'hf')


def is_uri(path: str | os.PathLike) -> bool:
  """Whether PATH names object storage (``scheme://...``), not a local path."""
  return '://' in os.fspath(path)


def absolute(path: str | os.PathLike) -> str:
  """PATH made absolute: ``~`` expanded and joined to the cwd if local."""
  path = os.fspath(path)
  if is_uri(path):
    return path.rstrip('/')
  return os.path.abspath(os.path.expanduser(path))


def _epath(path: str | os.PathLike) -> epath.Path:
  path = os.fspath(path)
  if path.startswith('gs://') and importlib.util.find_spec('gcsfs') is None:
    raise ImportError(f'{path}: gs:// paths need gcsfs; install it with '
                      "pip install -e '.[gcs]'.")
  return epath.Path(path)


def open_file(path: str | os.PathLike, mode: str = 'r', *,
              encoding: str | None = None,
              newline: str | None = None) -> IO:
  """``open()`` for local paths and URIs, with ENCODING and NEWLINE honoured.

  Modes: ``r``, ``w``, ``a`` (local only), with or without ``b``.
  """
  if not is_uri(path):
    return builtins.open(path, mode, encoding=encoding, newline=newline)
  if 'a' in mode:
    raise ValueError(f'{path}: object storage cannot append (mode {mode!r}); '
                     'rewrite the whole file instead.')
  raw = _epath(path).open(mode.replace('b', '') + 'b')
  if 'b' in mode:
    return raw
  # epath's text mode knows neither newline= nor utf-8-sig: decode here.
  return io.TextIOWrapper(raw, encoding=encoding or 'utf-8', newline=newline)


def read_text(path: str | os.PathLike) -> str:
  with open_file(path, encoding='utf-8') as f:
    return f.read()


def write_text(path: str | os.PathLike, text: str) -> None:
  """Writes TEXT to PATH whole: a reader (or a run killed mid-write) sees the
  old file or the new one, never a part. Locally through a temporary file
  beside it (same file system; the PID keeps two writers apart) and a rename;
  on object storage an upload becomes visible only once complete."""
  if is_uri(path):
    with open_file(path, 'w', encoding='utf-8') as f:
      f.write(text)
    return
  tmp = f'{path}.tmp{os.getpid()}'
  try:
    with builtins.open(tmp, 'w', encoding='utf-8') as f:
      f.write(text)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):  # The write or the rename failed.
      os.remove(tmp)


def write_json(path: str | os.PathLike, obj: Any, **dump_kwargs: Any) -> None:
  """``json.dumps(obj, **DUMP_KWARGS)`` written whole (see ``write_text``)."""
  write_text(path, json.dumps(obj, **dump_kwargs))


def _fresh(path: str | os.PathLike) -> epath.Path:
  """PATH as an epath whose next lookups ask the store, not a cache.

  gcsfs caches folder listings per process, and the checkpoint arrays are
  written by tensorstore, which that cache never hears of: a listing taken
  before a save (or before a killed run's leftovers were moved) would be
  stale. These calls are rare (checkpoints, locks), so ask afresh.
  """
  p = _epath(path)
  fs = p._backend.fs(os.fspath(path))  # pylint: disable=protected-access
  if hasattr(fs, 'invalidate_cache'):
    fs.invalidate_cache(os.fspath(path))
  return p


def exists(path: str | os.PathLike) -> bool:
  return _fresh(path).exists() if is_uri(path) else os.path.exists(path)


def isdir(path: str | os.PathLike) -> bool:
  return _fresh(path).is_dir() if is_uri(path) else os.path.isdir(path)


def isfile(path: str | os.PathLike) -> bool:
  if not is_uri(path):
    return os.path.isfile(path)
  p = _fresh(path)
  return p.exists() and not p.is_dir()


def makedirs(path: str | os.PathLike) -> None:
  """Creates folder PATH and its parents; a no-op for a URI.

  Object storage has no folders (a file's upload makes its prefix), and
  gcsfs's makedirs would create a missing *bucket*: a typo in a bucket name
  should fail at the first write, naming the path, not make a new bucket.
  """
  if not is_uri(path):
    os.makedirs(path, exist_ok=True)


def listdir(path: str | os.PathLike) -> list[str]:
  """Names (not paths) in folder PATH."""
  if not is_uri(path):
    return os.listdir(path)
  return [os.path.basename(o) for o in _objects(path, recursive=False)]


def _objects(path: str | os.PathLike, recursive: bool) -> list[str]:
  """The entries under folder PATH on object storage, as store paths
  (``bucket/key``, no scheme): its children, or with RECURSIVE every object
  under it. A zero-byte ``PATH/`` folder marker (some tools write them; a run
  killed mid-save can leave one alone) is not an entry of its own folder.

  Raises:
    FileNotFoundError: nothing is stored under PATH.
  """
  p = _fresh(path)
  fs = p._backend.fs(os.fspath(path))  # pylint: disable=protected-access
  me = fs._strip_protocol(os.fspath(path)).rstrip('/')  # pylint: disable=protected-access
  names = fs.find(me, withdirs=False) if recursive else fs.ls(me, detail=False)
  return [n.rstrip('/') for n in names if n.rstrip('/') != me]


def glob(pattern: str) -> list[str]:
  """Sorted paths matching PATTERN (``*``, ``?``, ``[...]``; no ``**``)."""
  if not is_uri(pattern):
    return sorted(glob_lib.glob(pattern))
  # epath globs relative to a folder: split at the first magic component.
  scheme, rest = pattern.split('://', 1)
  parts = rest.split('/')
  fixed = next((i for i, p in enumerate(parts) if glob_lib.has_magic(p)), None)
  if fixed is None:
    return [pattern] if exists(pattern) else []
  if fixed == 0:
    raise ValueError(f'{pattern}: a glob in the bucket name is not supported.')
  root = _epath(f'{scheme}://' + '/'.join(parts[:fixed]))
  return sorted(os.fspath(p) for p in root.glob('/'.join(parts[fixed:])))


def has_magic(pattern: str) -> bool:
  return glob_lib.has_magic(pattern)


def remove(path: str | os.PathLike, missing_ok: bool = False) -> None:
  if is_uri(path):
    _epath(path).unlink(missing_ok=missing_ok)
    return
  try:
    os.remove(path)
  except FileNotFoundError:
    if not missing_ok:
      raise


def rmtree(path: str | os.PathLike) -> None:
  """Removes the folder PATH and all in it; quiet if it is missing."""
  if not is_uri(path):
    shutil.rmtree(path, ignore_errors=True)
  elif _fresh(path).exists():
    _epath(path).rmtree(missing_ok=True)
    _fresh(path)  # The listings that held PATH are stale now.


def rename(src: str | os.PathLike, dst: str | os.PathLike) -> None:
  """Moves SRC to DST (a file or a folder; copy + delete on object storage)."""
  if not (is_uri(src) or is_uri(dst)):
    os.rename(src, dst)
  elif isdir(src):
    # By hand: epath's rename wants DST's parent to exist, and on object
    # storage an empty "folder" does not.
    copytree(src, dst)
    rmtree(src)
  else:
    copyfile(src, dst)
    remove(src)
    _fresh(src)


def copyfile(src: str | os.PathLike, dst: str | os.PathLike) -> None:
  if is_uri(src) or is_uri(dst):
    _epath(src).copy(dst, overwrite=True)
  else:
    shutil.copyfile(src, dst)


def copytree(src: str | os.PathLike, dst: str | os.PathLike) -> None:
  """Copies folder SRC into DST, overwriting files of the same name."""
  if not (is_uri(src) or is_uri(dst)):
    shutil.copytree(src, dst, dirs_exist_ok=True)
    return
  for name in listdir(src):
    s, d = os.path.join(src, name), os.path.join(dst, name)
    if isdir(s):
      copytree(s, d)
    else:
      makedirs(dst)
      copyfile(s, d)


def create_new(path: str | os.PathLike, text: str) -> None:
  """Writes TEXT to PATH only if PATH does not exist yet, atomically.

  Local: ``O_CREAT | O_EXCL``. ``gs://``: an upload with the precondition
  ``ifGenerationMatch=0``, which GCS checks atomically. Other URIs: an
  existence check, then the write (best effort: two racing creators can both
  succeed).

  Raises:
    FileExistsError: PATH exists (or was created by another writer first).
  """
  path = os.fspath(path)
  if not is_uri(path):
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    with os.fdopen(fd, 'w') as f:
      f.write(text)
    return
  if exists(path):
    raise FileExistsError(path)
  if not path.startswith('gs://'):
    write_text(path, text)
    return
  p = _epath(path)
  fs = p._backend.fs(path)  # pylint: disable=protected-access
  try:
    with fs.open(path, 'xb') as f:  # gcsfs: ifGenerationMatch=0.
      f.write(text.encode('utf-8'))
  except Exception as e:  # pylint: disable=broad-except
    # A failed precondition comes back as HTTP 412 in whatever error type.
    if '412' in str(e) or 'precondition' in str(e).lower():
      raise FileExistsError(path) from e
    raise


def cache_dir() -> str:
  """Where local copies of remote files go: ``$BERT_JAX_CACHE`` or a tmp dir."""
  return os.environ.get('BERT_JAX_CACHE') or os.path.join(
      tempfile.gettempdir(), 'bert_jax_cache')


@contextlib.contextmanager
def local_copy(path: str | os.PathLike) -> Iterator[str]:
  """A local file path with PATH's content, for libraries that need one.

  A local PATH is yielded as is; a remote file is downloaded to a temporary
  file, removed after the ``with`` block.
  """
  path = os.fspath(path)
  if not is_uri(path):
    yield path
    return
  fd, local = tempfile.mkstemp(suffix='-' + os.path.basename(path))
  try:
    with os.fdopen(fd, 'wb') as out, open_file(path, 'rb') as src:
      shutil.copyfileobj(src, out)
    yield local
  finally:
    os.remove(local)


def cached_copy(path: str) -> str:
  """A local copy of remote file PATH under ``cache_dir()``, kept for reuse.

  Reused while the remote object keeps its size and modification time; a
  local PATH is returned as is.
  """
  if not is_uri(path):
    return path
  stat = _epath(path).stat()
  # The object's size and time are in the key: a rewritten file is fetched anew.
  key = hashlib.sha256(f'{path} {stat.length} {stat.mtime}'.encode()
                       ).hexdigest()[:16]
  local = os.path.join(cache_dir(), key + '-' + os.path.basename(path))
  if os.path.exists(local) and os.path.getsize(local) == stat.length:
    return local
  os.makedirs(cache_dir(), exist_ok=True)
  tmp = f'{local}.{os.getpid()}.part'
  with builtins.open(tmp, 'wb') as out, open_file(path, 'rb') as src:
    shutil.copyfileobj(src, out)
  os.replace(tmp, local)  # Whole or absent, for a concurrent reader.
  return local


@contextlib.contextmanager
def local_dir_for(path: str) -> Iterator[str]:
  """A local folder whose files end up in PATH when the block ends.

  For writers that only write local files (array_record): local PATH is
  yielded as is; for a URI, a temporary folder, uploaded then removed.
  """
  if not is_uri(path):
    yield path
    return
  local = tempfile.mkdtemp(prefix='bert_jax_upload_')
  try:
    yield local
    copytree(local, path)
  finally:
    shutil.rmtree(local, ignore_errors=True)
