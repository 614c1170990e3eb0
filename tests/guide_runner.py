"""Runs the fenced ``python`` and ``bash`` blocks of a markdown guide, in order.

  python tests/guide_runner.py docs/guide.md      # in the folder to run in

The python blocks share one namespace (one session per guide), the bash
blocks run with ``bash -euo pipefail`` in the same folder, so blocks share
state through variables (python) and files (both). A failing block stops the
run and exits 1, naming the guide's file and line; each block's time is
printed. Blocks with any other info string (``text``, ``console``) are not
run: a guide uses them for outputs and for commands that cannot run here.
tests/test_guide.py is the test that calls this.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import textwrap
import time
import traceback

RUN = ('python', 'bash')
_FENCE = re.compile(r'^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`\n]*)$')


@dataclasses.dataclass
class Block:
  line: int     # 1-based line of the opening fence
  info: str     # the first word of the info string ('' for none)
  code: str


def collect(text: str) -> list[Block]:
  """Every fenced block of TEXT (indented ones too, dedented)."""
  blocks, lines, i = [], text.splitlines(), 0
  while i < len(lines):
    m = _FENCE.match(lines[i])
    if not m:
      i += 1
      continue
    fence, start = m.group('fence'), i
    body = []
    i += 1
    while i < len(lines) and not (lines[i].strip().startswith(fence) and
                                  lines[i].strip().strip(fence[0]) == ''):
      body.append(lines[i])
      i += 1
    if i == len(lines):
      raise ValueError(f'line {start + 1}: a code block is never closed.')
    info = (m.group('info').split() or [''])[0]
    blocks.append(Block(start + 1, info, textwrap.dedent('\n'.join(body)) + '\n'))
    i += 1
  return blocks


def run(path: str) -> int:
  with open(path, encoding='utf-8') as f:
    blocks = [b for b in collect(f.read()) if b.info in RUN]
  namespace = {'__name__': '__main__'}
  timings = []
  for n, b in enumerate(blocks, 1):
    where = f'{path}:{b.line}'
    print(f'=== block {n}/{len(blocks)} ({where}, {b.info})', flush=True)
    t0 = time.perf_counter()
    if b.info == 'python':
      try:
        exec(compile(b.code, where, 'exec'), namespace)  # pylint: disable=exec-used
      except BaseException:  # pylint: disable=broad-except
        traceback.print_exc()
        print(f'FAILED: the python block at {where}', flush=True)
        return 1
    else:
      sys.stdout.flush()
      r = subprocess.run(['bash', '-euo', 'pipefail', '-c', b.code], check=False)
      if r.returncode:
        print(f'FAILED: the bash block at {where} exited {r.returncode}',
              flush=True)
        return 1
    timings.append((time.perf_counter() - t0, where))
  print('=== timings (s):', ', '.join(f'{w.rsplit(":", 1)[1]}: {t:.1f}'
                                     for t, w in timings), flush=True)
  print(f'=== total {sum(t for t, _ in timings):.1f} s', flush=True)
  return 0


if __name__ == '__main__':
  sys.exit(run(sys.argv[1]))
