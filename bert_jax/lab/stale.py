r"""Which results tables in the docs are stale: their code changed since they were measured.

Every results table in ``docs/*.md`` and ``README.md`` carries a marker, an
HTML comment just above it (invisible on the rendered page):

  <!-- measured: commit=6ec40bc date=2026-12-03 jax=0.10.2 cpu="2-core, model not recorded"
       code="bert_jax/models bert_jax/train" command="python -m bert_jax.lab.study ..." -->

``code`` names the paths (files or folders) whose change can change the
figures: the modules the measured run imports, at the granularity that keeps
the list short. ``commit`` is the commit the figures were measured at, or
``unknown`` (say so rather than guess). A table is **stale** when
``git diff --stat COMMIT..HEAD -- CODE`` is not empty; then re-measure it, or
acknowledge it: ``stale="what changed"`` in the marker, shown next to the
table for readers, stops it failing the check until the commit is moved on.

A table kept as a record after the same figures were measured again (an
earlier run under load, a profile of code since tuned) names its successor:
``superseded_by=TABLE`` (another marker's ``table=``), with a visible
**Superseded** line under it. It is ``superseded``, not stale, while that
table exists and is ``ok``; otherwise it is checked like any other.

  python -m bert_jax.lab.stale                 # every marker: ok / STALE / unknown
  python -m bert_jax.lab.stale --strict        # exit 1 on any unacknowledged stale table
  python -m bert_jax.lab.stale --unmarked      # also: "Measured" sections without a marker

Exit status: 0, or 1 when a table is stale and not acknowledged (with
``--strict``: acknowledged ones count too), or a commit does not exist.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import os
import re
import shlex
import subprocess
import sys

MARKER = re.compile(r'<!--\s*measured:(.*?)-->', re.S)
_HEADING = re.compile(r'^(#{1,6})\s+(.*)$', re.M)
# A section heading that announces figures: "Measured", or a date in brackets.
_RESULTS_HEADING = re.compile(r'measured|\(\d{4}-\d{2}-\d{2}', re.I)
UNKNOWN = 'unknown'
_FENCE = re.compile(r'^```.*?^```', re.S | re.M)


def _prose(text: str) -> str:
  """TEXT with fenced code blocks blanked (line numbers kept): a marker
  shown as an example in a code block is not a marker."""
  return _FENCE.sub(lambda m: '\n' * m.group(0).count('\n'), text)


@dataclasses.dataclass
class Marker:
  file: str              # Relative to the repository root.
  line: int
  fields: dict[str, str]

  @property
  def commit(self) -> str:
    return self.fields.get('commit', UNKNOWN)

  @property
  def code(self) -> list[str]:
    return self.fields.get('code', '').split()


@dataclasses.dataclass
class Status:
  marker: Marker
  state: str   # 'ok', 'stale', 'acknowledged', 'superseded', 'unknown', 'error'
  changed: list[str]     # `git diff --stat` lines of CODE since COMMIT.
  note: str = ''


def parse_fields(body: str) -> dict[str, str]:
  """KEY=VALUE pairs; values with spaces in double quotes."""
  out = {}
  for token in shlex.split(body.replace('\n', ' ')):
    if '=' not in token:
      raise ValueError(f'marker field {token!r} is not KEY=VALUE')
    key, value = token.split('=', 1)
    out[key] = value
  return out


def _docs(root: str, files: list[str] | None):
  """(path relative to ROOT, prose) of FILES (default: README.md and
  docs/*.md); missing files are skipped."""
  if files is None:
    files = ['README.md'] + sorted(
        os.path.relpath(p, root) for p in glob.glob(os.path.join(root, 'docs', '*.md')))
  for rel in files:
    path = os.path.join(root, rel)
    if os.path.exists(path):
      with open(path, encoding='utf-8') as f:
        yield rel, _prose(f.read())


def markers(root: str, files: list[str] | None = None) -> list[Marker]:
  """Every marker of FILES (default: README.md and docs/*.md under ROOT)."""
  out = []
  for rel, text in _docs(root, files):
    for m in MARKER.finditer(text):
      line = text.count('\n', 0, m.start()) + 1
      try:
        fields = parse_fields(m.group(1))
      except ValueError as e:
        raise ValueError(f'{rel}:{line}: {e}') from None
      out.append(Marker(rel, line, fields))
  return out


def unmarked_sections(root: str, files: list[str] | None = None) -> list[tuple[str, int, str]]:
  """(file, line, heading) of results sections (heading says "measured" or
  has a date) that hold a markdown table but no marker."""
  out = []
  for rel, text in _docs(root, files):
    heads = list(_HEADING.finditer(text))
    for i, h in enumerate(heads):
      body = text[h.end():heads[i + 1].start() if i + 1 < len(heads) else len(text)]
      if (_RESULTS_HEADING.search(h.group(2)) and re.search(r'^\|.*\|\s*$', body, re.M)
          and not MARKER.search(body)):
        out.append((rel, text.count('\n', 0, h.start()) + 1, h.group(2).strip()))
  return out


def _git(root: str, *args: str) -> subprocess.CompletedProcess:
  return subprocess.run(['git', '-C', root, *args], capture_output=True, text=True)


def check(root: str, marker: Marker, head: str = 'HEAD') -> Status:
  """Whether MARKER's code changed between its commit and HEAD."""
  if marker.commit == UNKNOWN:
    return Status(marker, 'unknown', [], 'commit not recorded: cannot tell')
  if not marker.code:
    return Status(marker, 'error', [], 'marker has no code="PATHS"')
  if _git(root, 'rev-parse', '--verify', '--quiet', marker.commit + '^{commit}').returncode:
    return Status(marker, 'error', [], f'commit {marker.commit} not in this repository')
  diff = _git(root, 'diff', '--stat=200', f'{marker.commit}..{head}', '--', *marker.code)
  if diff.returncode:
    return Status(marker, 'error', [], diff.stderr.strip())
  changed = [l.strip() for l in diff.stdout.splitlines() if '|' in l]
  if not changed:
    return Status(marker, 'ok', [])
  state = 'acknowledged' if marker.fields.get('stale') else 'stale'
  return Status(marker, state, changed, marker.fields.get('stale', ''))


def check_all(root: str, found: list[Marker], head: str = 'HEAD') -> list[Status]:
  """``check`` for every marker, then ``superseded_by`` resolved: a table
  whose named successor is ``ok`` is ``superseded``; a successor that is
  missing or not ``ok`` leaves it as checked, with a note saying so."""
  statuses = [check(root, m, head) for m in found]
  by_table = {s.marker.fields['table']: s for s in statuses
              if 'table' in s.marker.fields}
  for s in statuses:
    successor = s.marker.fields.get('superseded_by')
    if not successor or s.state == 'error':
      continue
    after = by_table.get(successor)
    if after is None:
      s.note = (s.note + '; ' if s.note else '') + (
          f'superseded_by={successor}: no table of that name')
    elif after.state != 'ok':
      s.note = (s.note + '; ' if s.note else '') + (
          f'superseded_by={successor}: that table is {after.state}')
    else:
      s.state, s.changed = 'superseded', []
      s.note = (f'by {successor} ({after.marker.file}:{after.marker.line}, '
                f'commit={after.marker.commit})')
  return statuses


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog='python -m bert_jax.lab.stale', description=__doc__.split('\n\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--root', default='.', help='Repository root (default: .).')
  parser.add_argument('--head', default='HEAD', help='Compare against (default HEAD).')
  parser.add_argument('--strict', action='store_true',
                      help='Acknowledged stale tables fail too.')
  parser.add_argument('--unmarked', action='store_true',
                      help='Also list results sections without a marker.')
  parser.add_argument('--files', nargs='*', help='Markdown files (default README.md, docs/*.md).')
  args = parser.parse_args(argv)
  root = args.root
  try:
    found = markers(root, args.files)
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  rc = 0
  counts: dict[str, int] = {}
  for s in check_all(root, found, args.head):
    m = s.marker
    counts[s.state] = counts.get(s.state, 0) + 1
    where = f'{m.file}:{m.line}'
    label = m.fields.get('table', '')
    print(f'{s.state.upper() if s.state == "stale" else s.state:12} {where}'
          f'{" (" + label + ")" if label else ""}  commit={m.commit}'
          f'{"  " + s.note if s.note else ""}')
    for line in s.changed:
      print(f'    {line}')
    if s.state == 'error' or s.state == 'stale' or (args.strict and s.state == 'acknowledged'):
      rc = 1
  if args.unmarked:
    for rel, line, head in unmarked_sections(root, args.files):
      print(f'{"unmarked":12} {rel}:{line}  {head}')
  print(f'{len(found)} table(s): ' + ', '.join(f'{v} {k}' for k, v in sorted(counts.items())))
  return rc


if __name__ == '__main__':
  sys.exit(main())
