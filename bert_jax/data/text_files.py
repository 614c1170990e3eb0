"""Reading local text files the same forgiving-but-strict way everywhere.

Every local reader (TSV/CSV/JSONL task files, CoNLL, SQuAD JSON, corpus text
files) gets its text from here, so they all accept and refuse the same things:

* a UTF-8 byte-order mark (spreadsheet exports, Windows editors) is dropped;
* CRLF line endings are kept on the line; readers strip or split lines, and
  the csv module reads ``\\r\\n`` itself;
* bytes that are not UTF-8 fail with ``FILE:LINE: byte offset N (byte C of
  the line) is 0xE9, not UTF-8 text``; a UTF-16 file is named as such, and a NUL
  byte (binary files have them, text files never do) fails the same way;
* lines of any length are read (a 10 MB line is one ``bytes`` object, then
  one ``str``).

Files are read as bytes and decoded line by line, so a line number and a file
offset come for free; a UTF-8 sequence never holds the byte ``\\n``, so
splitting before decoding cannot cut a character.
"""

from __future__ import annotations

from collections.abc import Iterator

from bert_jax import storage
from bert_jax.errors import InputFileNotFoundError, UserInputError

_BOM = b'\xef\xbb\xbf'
_UTF16_BOMS = (b'\xff\xfe', b'\xfe\xff')


def check_file(path: str, what: str = 'file') -> None:
  """Raises InputFileNotFoundError unless PATH is a file (naming WHAT it is)."""
  if storage.isdir(path):
    raise InputFileNotFoundError(f'{path}: is a directory; expected a {what}.')
  if not storage.isfile(path):
    raise InputFileNotFoundError(f'{path}: no such {what}.')


def _decode(path: str, raw: bytes, line: int, file_offset: int) -> str:
  """RAW (one line, or a whole file from LINE on) as str; errors name it."""
  try:
    text, bad = raw.decode('utf-8'), len(raw)
  except UnicodeDecodeError as e:
    text, bad = None, e.start
  nul = raw.find(b'\x00', 0, bad)
  if text is not None and nul < 0:
    return text
  pos = nul if nul >= 0 else bad
  at_line = line + raw.count(b'\n', 0, pos)
  column = pos - (raw.rfind(b'\n', 0, pos) + 1) + 1
  where = (f'{path}:{at_line}: byte offset {file_offset + pos} (byte {column} '
           'of the line)')
  if nul >= 0:
    raise UserInputError(f'{where} is a NUL byte: this looks like a binary '
                         'file; expected UTF-8 text.')
  raise UserInputError(f'{where} is 0x{raw[pos]:02X}, not UTF-8 text; expected '
                       'UTF-8 (convert it, e.g. iconv -f latin1 -t utf-8).')


def _check_start(path: str, head: bytes) -> int:
  """Bytes to skip at the start (a UTF-8 BOM); refuses UTF-16."""
  if head.startswith(_UTF16_BOMS):
    raise UserInputError(f'{path}:1: the file is UTF-16 (it starts with a '
                         'UTF-16 byte-order mark); expected UTF-8 text.')
  return len(_BOM) if head.startswith(_BOM) else 0


def iter_lines(path: str) -> Iterator[tuple[int, str]]:
  """(1-based line number, line with its line ending) of a UTF-8 file.

  Raises:
    InputFileNotFoundError: If PATH is not a file.
    UserInputError: At the first line that is not UTF-8 or holds a NUL byte.
  """
  check_file(path)
  offset = 0
  with storage.open_file(path, 'rb') as f:
    for number, raw in enumerate(f, start=1):
      skip = _check_start(path, raw) if number == 1 else 0
      yield number, _decode(path, raw[skip:], number, offset + skip)
      offset += len(raw)


def read_text(path: str) -> str:
  """The whole of a UTF-8 file (BOM dropped); errors as `iter_lines`."""
  check_file(path)
  with storage.open_file(path, 'rb') as f:
    raw = f.read()
  skip = _check_start(path, raw)
  return _decode(path, raw[skip:], 1, skip)
