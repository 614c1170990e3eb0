"""Shared by the bad-input tests (tests/test_bad_input*.py): the case
record, the one-line check, and the outcome table.

``BERT_JAX_BAD_INPUT_TABLE=PATH pytest tests/test_bad_input.py
tests/test_bad_input_models.py tests/test_bad_input_launch.py`` writes the
outcome of every case as a markdown table (docs/reliability.md has it).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import pytest

from bert_jax.errors import UserInputError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIG = 10 * 1024 * 1024  # The "10 MB line".
LATIN1 = 'caf\xe9'.encode('latin-1')  # b'caf\xe9': not UTF-8.
BOM = b'\xef\xbb\xbf'
OUTCOMES: dict[str, tuple[str, str]] = {}  # test -> (input, outcome)


@dataclasses.dataclass(frozen=True)
class Case:
  id: str
  input: str  # What was fed in, for the table.
  run: Callable[[str], str]  # tmp dir -> the outcome (asserts inside).


def write(directory: str, name: str, data: bytes | str) -> str:
  path = os.path.join(directory, name)
  with open(path, 'wb') as f:
    f.write(data.encode() if isinstance(data, str) else data)
  return path


def fails(fn: Callable[[], object], *expected: str, multiline=False) -> str:
  """Runs FN, which must raise a UserInputError holding every EXPECTED."""
  with pytest.raises(UserInputError) as e:
    fn()
  msg = str(e.value)
  for part in expected:
    assert part in msg, f'{part!r} not in {msg!r}'
  if not multiline:
    assert '\n' not in msg, msg
    return f'error: {msg}'
  # A list of problems: its first line, and the first problem of each kind.
  lines = msg.splitlines()
  kinds = {l.strip().split(':')[0]: l.strip() for l in reversed(lines[1:])}
  return f'error: {lines[0]} ' + ' / '.join(sorted(kinds.values()))


def run_case(case: Case, tmp_path) -> None:
  outcome = case.run(str(tmp_path))
  OUTCOMES[f'[{case.id}]'] = (case.input,
                              outcome.replace(str(tmp_path) + os.sep, ''))


@pytest.fixture(scope='module', autouse=True)
def outcome_table():
  """Writes every outcome so far to $BERT_JAX_BAD_INPUT_TABLE after each
  module (the last one run has them all)."""
  yield
  path = os.environ.get('BERT_JAX_BAD_INPUT_TABLE')
  if not path:
    return
  rows = ['| input | outcome | test |', '|---|---|---|']
  for test, (what, outcome) in OUTCOMES.items():
    # Inside a code span: no '|' (a cell break) and no '`' (the span's end).
    outcome = outcome.replace('|', '\\|').replace('`', "'")
    rows.append(f'| {what} | `{outcome}` | `{test}` |')
  with open(path, 'w') as f:
    f.write('\n'.join(rows) + '\n')
