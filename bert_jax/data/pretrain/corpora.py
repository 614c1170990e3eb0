"""Text corpora for pretraining, as documents made of sentences.

Every corpus comes out the same way: an iterator of documents, each a list of
non-empty, stripped sentence strings, which is what BERT's example builder
(`bert_jax.data.pretrain.examples`) needs to make sentence pairs. A corpus is named
by a spec string:

* `'builtin'`: the English documentation that ships inside every Python
  interpreter, read at run time, so tests and `runlocal` configs need neither a
  download nor a cache. It is the `pydoc_data` help topics (one document per
  topic) plus the docstrings of the standard library's modules, classes and
  functions (one document per module, submodules included): a few hundred
  documents, quick to load (sizes and timing in docs/pretraining.md). The
  exact text depends on the interpreter's version and platform (a module that
  fails to import is skipped), not on anything else.
* A path or glob (local, or gs://... and other URIs), or several joined by commas: text files in the original
  BERT format, one sentence per line, documents separated by blank lines.
* `'tfds:NAME[:SPLIT]'`, e.g. `'tfds:wikipedia/20230601.en:train'`: a TFDS
  dataset read through `bert_jax.data.tfds_source` (array_record files, no
  TensorFlow needed); each record's text field is one document, split into
  sentences with `split_sentences`. The split defaults to `train` and may be
  a slice (`train[:1%]`); NAME may carry a version
  (`wikipedia/20230601.en:1.0.0`).
  The dataset must have been prepared in array_record format first, once:

      tfds build wikipedia/20230601.en --file_format=array_record

  or in Python `tfds.builder('wikipedia/20230601.en').download_and_prepare(
  file_format='array_record')` (both take `--data_dir` / `data_dir=`).
"""

from collections.abc import Iterable, Iterator, Sequence
import contextlib
import hashlib
import importlib
import inspect
import io
import os
import pkgutil
import re
import sys
import warnings

from bert_jax import storage
from bert_jax.data import text_files
from bert_jax.data import tfds_source
from bert_jax.errors import InputFileNotFoundError, UserInputError

SPEC_FORMS = ("'builtin'", 'a path or glob (comma-separated for several)',
              "'tfds:NAME[:SPLIT]'")

# Modules never imported for the builtin corpus: side effects on import
# (`this` prints, `antigravity` opens a browser, `rlcompleter`/`readline` touch
# the terminal, `lib2to3` writes grammar caches), GUIs, the test suite,
# Windows-only modules, `distutils` (setuptools swaps in its own copy, so the
# text would depend on the installed setuptools) and the codec tables.
_SKIP_MODULES = frozenset({
    'antigravity', 'this', 'tkinter', 'turtle', 'turtledemo', 'idlelib',
    'readline', 'rlcompleter', 'lib2to3', 'test', 'distutils', 'encodings',
    'msilib', 'msvcrt', 'nt', 'ntpath', 'winreg', 'winsound',
})

_SENTENCE_END_RE = re.compile(r'(?<=[.?!])\s+(?=["\'(\[]?[A-Z])')
_BULLET_RE = re.compile(r'^(?:[*+\-\u2022]|\d+[.)])\s+')
_NO_WORDS_RE = re.compile(r'^[\W_]*$')  # Rules, underlines: '*****', '----'.
_TFDS_RE = re.compile(
    r'^tfds:(?P<name>[^:\[\]]+(?::\d+\.\d+\.\d+)?)(?::(?P<split>.+))?$')
_SCHEME_RE = re.compile(r'^[A-Za-z][\w+.-]*:')


def split_sentences(text: str, min_words: int = 2) -> list[str]:
  """Splits free text into sentences, simply and robustly.

  Blank lines end paragraphs. Prose paragraphs are joined into one line and
  split after `.`, `?` or `!` when the next word starts with a capital letter;
  list items start new sentences. Code (a paragraph with `>>>` prompts, or an
  indented paragraph after one ending in `:`) keeps one line per sentence, so a
  statement is never cut in the middle. Lines made only of punctuation (rules,
  heading underlines) are dropped, and so is any sentence of fewer than
  `min_words` words.

  Args:
    text: Any text, e.g. a docstring or a Wikipedia article.
    min_words: Shorter fragments are dropped.

  Returns:
    The sentences, stripped and with runs of whitespace collapsed.
  """
  sentences = []
  after_colon = False
  for paragraph in re.split(r'\n[ \t]*\n', text.expandtabs()):
    lines = [l for l in paragraph.split('\n') if not _NO_WORDS_RE.match(l)]
    if not lines:
      continue
    indent = min(len(l) - len(l.lstrip()) for l in lines)
    is_code = (any(l.lstrip().startswith(('>>>', '... ')) for l in lines) or
               (indent > 0 and after_colon))
    after_colon = lines[-1].rstrip().endswith(':')
    if is_code:
      pieces = [l.strip() for l in lines]
    else:
      pieces = []
      for item in _list_items(l.strip() for l in lines):
        pieces.extend(_SENTENCE_END_RE.split(item))
    for piece in pieces:
      piece = ' '.join(piece.split())
      if len(piece.split()) >= min_words:
        sentences.append(piece)
  return sentences


def _list_items(lines: Iterable[str]) -> list[str]:
  """Joins prose lines, starting a new item at each bullet or number."""
  items = []
  for line in lines:
    if _BULLET_RE.match(line) or not items:
      items.append(_BULLET_RE.sub('', line))
    else:
      items[-1] += ' ' + line
  return items


def load_corpus(spec: str = 'builtin',
                max_documents: int | None = None,
                *,
                text_key: str = 'text',
                data_dir: str | None = None) -> Iterator[list[str]]:
  """Yields the documents of a corpus, each a list of sentences.

  Args:
    spec: `'builtin'`, a path/glob (several joined by commas), or
      `'tfds:NAME[:SPLIT]'`; see the module docstring.
    max_documents: Stop after this many documents; None reads them all.
    text_key: For TFDS, the feature holding each record's text.
    data_dir: For TFDS, where prepared datasets live (TFDS's default if None).

  Yields:
    Documents in a deterministic order: lists of non-empty, stripped
    sentences. Documents left with no sentence are skipped.

  Raises:
    UserInputError: For a spec of no known form, a local file that is empty,
      binary or not UTF-8 (naming the file and line).
    InputFileNotFoundError: For a path or glob that matches no file.
  """
  if max_documents is not None and max_documents < 1:
    raise ValueError(f'max_documents must be >= 1 or None, got {max_documents}')
  spec = spec.strip()
  if spec == 'builtin':
    docs = _builtin_documents()
  elif spec.startswith('tfds:'):
    docs = _tfds_documents(spec, text_key=text_key, data_dir=data_dir)
  elif spec and (not _SCHEME_RE.match(spec)
                 or spec.split('://', 1)[0] in storage.URI_SCHEMES):
    docs = _file_documents(spec)
  else:
    raise UserInputError(f'unknown corpus spec {spec!r} (data.corpus); valid '
                         'forms: ' + ', '.join(SPEC_FORMS))
  count = 0
  for doc in docs:
    if not doc:
      continue
    yield doc
    count += 1
    if count == max_documents:
      return


def split_documents(
    docs: Iterable[Sequence[str]], eval_fraction: float,
    seed: int = 0, field: str | None = 'eval_fraction'
) -> tuple[list[list[str]], list[list[str]]]:
  """Holds out documents for evaluation, stably.

  A document goes to eval when a hash of its text and the seed falls below
  `eval_fraction`, so the split does not depend on the order of the documents
  or on which other documents are present, and duplicates land on one side.

  Args:
    docs: Documents (lists of sentences).
    eval_fraction: Expected fraction held out, in [0, 1).
    seed: Changes which documents are held out.
    field: How the caller names EVAL_FRACTION, for the error below; None
      skips the check (a part of a corpus, such as a prepare work unit, may
      hold out nothing: the caller checks the whole).

  Returns:
    (train documents, eval documents), each in input order.

  Raises:
    UserInputError: EVAL_FRACTION > 0 held out no document (a fraction too
      small for the corpus): evaluation was asked for and would silently not
      happen. 0 asks for none.
  """
  if not 0.0 <= eval_fraction < 1.0:
    raise ValueError(f'eval_fraction must be in [0, 1), got {eval_fraction}')
  train, held_out = [], []
  for doc in docs:
    digest = hashlib.blake2b(
        '\n'.join(doc).encode(), digest_size=8, key=str(seed).encode()
    ).digest()
    u = int.from_bytes(digest, 'little') / 2.0**64
    (held_out if u < eval_fraction else train).append(list(doc))
  if field is not None and eval_fraction > 0 and train and not held_out:
    n = len(train)
    raise UserInputError(
        f'{field}={eval_fraction} held out none of the {n} documents '
        f'(expected {eval_fraction * n:.2f}), so there would be no '
        f'evaluation: raise it (to {min(3 / max(n, 1), 0.5):.3g} or more for '
        'about 3 documents) or set it to 0 to train without one.')
  return train, held_out


def read_sentence_list(path: str) -> set[str]:
  """The sentences of PATH, one a line (blank lines skipped), whitespace-normalized.

  Raises:
    InputFileNotFoundError: PATH does not exist.
  """
  if not storage.exists(path):
    raise InputFileNotFoundError(
        f'data.exclude_sentences: {path} does not exist (expected a text file, '
        'one sentence a line).')
  return {' '.join(line.split()) for line in storage.read_text(path).splitlines()
          if line.strip()}


def exclude_sentences(docs: Iterable[Sequence[str]], excluded: set[str]
                      ) -> tuple[list[list[str]], int]:
  """DOCS without the sentences in EXCLUDED (e.g. a downstream task's dev set).

  Matching is exact after whitespace normalization, which is how the builtin
  topic task (`bert_jax.data.finetune.builtin_topics`) takes its sentences from this
  corpus. A document left with no sentence is dropped.

  Returns:
    (the documents, how many sentences were removed).
  """
  out, removed = [], 0
  for doc in docs:
    kept = [s for s in doc if ' '.join(s.split()) not in excluded]
    removed += len(doc) - len(kept)
    if kept:
      out.append(kept)
  return out, removed


# --- Local files. ---


def resolve_paths(spec: str) -> list[str]:
  """The files a path/glob spec (comma-separated parts) names, in order.

  Raises:
    InputFileNotFoundError: A part that matches no file.
  """
  paths = []
  for part in spec.split(','):
    part = part.strip()
    part = part if storage.is_uri(part) else os.path.expanduser(part)
    if not part:
      continue
    matches = storage.glob(part) if storage.has_magic(part) else (
        [part] if storage.exists(part) else [])
    matches = sorted(p for p in matches if storage.isfile(p))
    if not matches:
      raise InputFileNotFoundError(
          f'corpus file or glob {part!r} matches no file')
    paths.extend(matches)
  return paths


def _file_documents(spec: str) -> Iterator[list[str]]:
  """Documents from BERT-format text files named by paths/globs."""
  paths = resolve_paths(spec)
  for path in paths:
    doc, lines = [], 0
    # BOM, CRLF (strip() drops the '\r'), binary files: see text_files.
    for _, line in text_files.iter_lines(path):
      line = line.strip()
      if line:
        doc.append(line)
        lines += 1
      elif doc:
        yield doc
        doc = []
    if doc:  # A file's end also ends a document.
      yield doc
    if not lines:
      # An empty shard is usually a failed download or export: say so rather
      # than train on less data than the user thinks.
      raise UserInputError(
          f'{path}: corpus file has no text (empty or only blank lines); '
          'expected one sentence a line, documents separated by blank lines.')


# --- TFDS. ---


def _tfds_documents(spec: str, *, text_key: str,
                    data_dir: str | None) -> Iterator[list[str]]:
  """Documents from a TFDS dataset prepared as array_record."""
  match = _TFDS_RE.match(spec)
  if not match:
    raise ValueError(
        f'bad TFDS corpus spec {spec!r}; expected '
        "'tfds:NAME[:SPLIT]', e.g. 'tfds:wikipedia/20230601.en:train'")
  name, split = match['name'], match['split'] or 'train'
  for record in tfds_source.read_records(name, split, data_dir):
    if text_key not in record:
      raise KeyError(f'{spec}: records have no field {text_key!r}; fields: '
                     f'{sorted(record)}; pass text_key=')
    yield split_sentences(tfds_source.as_text(record[text_key]))


# --- The builtin corpus. ---


def _builtin_documents() -> Iterator[list[str]]:
  """Help topics, then one document per standard-library module."""
  from pydoc_data import topics  # pylint: disable=g-import-not-at-top
  for key in sorted(topics.topics):
    yield split_sentences(topics.topics[key])
  for _, doc in builtin_module_documents():
    yield doc


def builtin_module_documents() -> Iterator[tuple[str, list[str]]]:
  """(module name, sentences) per standard-library module, sorted by name.

  The module part of the builtin corpus, with the name each document comes
  from (e.g. for a sentence-topic task, `bert_jax.data.finetune.builtin_topics`). A
  docstring shared through aliases and re-exports counts once, for the first
  module (in name order) that has it.
  """
  seen = set()
  for name in _stdlib_module_names():
    module = _quiet_import(name)
    if module is None:
      continue
    doc = []
    for text in _module_docstrings(module):
      if text not in seen:
        seen.add(text)
        doc.extend(split_sentences(inspect.cleandoc(text)))
    yield name, doc


def _stdlib_module_names() -> list[str]:
  """Public standard-library modules and their submodules, sorted."""
  names = []

  def visit(name: str) -> None:
    if any(p.startswith('_') or p in ('test', 'tests', 'idle_test')
           for p in name.split('.')):
      return
    if name.split('.')[0] in _SKIP_MODULES:
      return
    module = _quiet_import(name)
    if module is None:
      return
    names.append(name)
    if hasattr(module, '__path__'):
      for info in pkgutil.iter_modules(module.__path__, name + '.'):
        visit(info.name)

  for name in sorted(sys.stdlib_module_names):
    visit(name)
  return sorted(names)


def _quiet_import(name: str):
  """Imports a module, or returns None if it fails; prints go nowhere."""
  sink = io.StringIO()
  with warnings.catch_warnings(), contextlib.redirect_stdout(sink), \
      contextlib.redirect_stderr(sink):
    warnings.simplefilter('ignore')
    try:
      return importlib.import_module(name)
    except BaseException:  # pylint: disable=broad-except
      # Platform-specific modules raise ImportError; a few raise others (or
      # SystemExit) when their C library is missing. None of it matters here.
      return None


def _module_docstrings(module) -> Iterator[str]:
  """The module's docstring, then its own classes, methods and functions."""
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')  # Deprecated aliases warn on access.
    yield from _docstrings_of(module, module.__name__)


def _docstrings_of(module, name: str) -> Iterator[str]:
  if isinstance(module.__doc__, str) and module.__doc__.strip():
    yield module.__doc__
  for attr, value in sorted(vars(module).items()):
    if attr.startswith('_') or getattr(value, '__module__', None) != name:
      continue  # Private, or imported from elsewhere.
    if not (inspect.isclass(value) or inspect.isroutine(value)):
      continue
    if isinstance(value.__doc__, str) and value.__doc__.strip():
      yield value.__doc__
    if inspect.isclass(value):
      for member_name, member in sorted(vars(value).items()):
        if member_name.startswith('_'):
          continue
        # Methods patched in by third-party packages (transformers adds some
        # to logging.Logger) would make the corpus depend on what is imported.
        if getattr(member, '__module__', name) not in (name, None):
          continue
        if inspect.isroutine(member) or isinstance(member, property):
          doc = getattr(member, '__doc__', None)
          if isinstance(doc, str) and doc.strip():
            yield doc
