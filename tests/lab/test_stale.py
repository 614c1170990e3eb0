"""bert_jax.lab.stale on a throwaway git repository: a table is stale exactly
when a file of its code changed after its commit."""

import subprocess

import pytest

from bert_jax.lab import stale


def _git(repo, *args):
  return subprocess.run(['git', '-C', str(repo), *args], check=True,
                        capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
  _git(tmp_path, 'init', '-q')
  _git(tmp_path, 'config', 'user.email', 't@t')
  _git(tmp_path, 'config', 'user.name', 't')
  (tmp_path / 'pkg' / 'models').mkdir(parents=True)
  (tmp_path / 'pkg' / 'models' / 'dropout.py').write_text('RATE = 0.1\n')
  (tmp_path / 'pkg' / 'data.py').write_text('N = 1\n')
  (tmp_path / 'docs').mkdir()
  _git(tmp_path, 'add', '.')
  _git(tmp_path, 'commit', '-qm', 'code')
  return tmp_path


def _doc(repo, commit, extra=''):
  (repo / 'docs' / 'results.md').write_text(
      '# Results\n\n## Measured (2026-12-03)\n\n'
      f'<!-- measured: commit={commit} jax=0.10.2 cpu="2-core" code="pkg/models" '
      f'command="python run.py --seeds 3" table=models {extra}-->\n'
      '| a | b |\n| --- | --- |\n| 1 | 2 |\n\n'
      '## Speed, measured\n\n| x |\n| --- |\n| 3 |\n')


def test_fresh_then_stale_then_acknowledged(repo, capsys):
  commit = _git(repo, 'rev-parse', '--short', 'HEAD')
  _doc(repo, commit)
  [m] = stale.markers(str(repo))
  assert m.file == 'docs/results.md' and m.commit == commit
  assert m.fields['command'] == 'python run.py --seeds 3'
  assert m.code == ['pkg/models']
  assert stale.check(str(repo), m).state == 'ok'
  assert stale.main(['--root', str(repo)]) == 0
  # A change outside the table's code leaves it current.
  (repo / 'pkg' / 'data.py').write_text('N = 2\n')
  _git(repo, 'commit', '-qam', 'data')
  assert stale.check(str(repo), m).state == 'ok'
  # A change inside makes it stale, naming the file.
  (repo / 'pkg' / 'models' / 'dropout.py').write_text('RATE = 0.1  # 16-bit\nBITS = 16\n')
  _git(repo, 'commit', '-qam', '16-bit dropout')
  s = stale.check(str(repo), m)
  assert s.state == 'stale' and 'pkg/models/dropout.py' in s.changed[0]
  assert stale.main(['--root', str(repo)]) == 1
  out = capsys.readouterr().out
  assert 'STALE' in out and 'docs/results.md:5' in out and 'dropout.py' in out
  # Acknowledged: listed, passes unless --strict.
  _doc(repo, commit, 'stale="16-bit dropout since" ')
  [m] = stale.markers(str(repo))
  assert stale.check(str(repo), m).state == 'acknowledged'
  assert stale.main(['--root', str(repo)]) == 0
  assert stale.main(['--root', str(repo), '--strict']) == 1


def test_superseded_only_while_its_successor_is_current(repo, capsys):
  old = _git(repo, 'rev-parse', '--short', 'HEAD')
  (repo / 'pkg' / 'models' / 'dropout.py').write_text('RATE = 0.2\n')
  _git(repo, 'commit', '-qam', 'new dropout')
  new = _git(repo, 'rev-parse', '--short', 'HEAD')

  def write(successor):
    (repo / 'docs' / 'results.md').write_text(
        f'<!-- measured: commit={old} code="pkg/models" table=loaded '
        f'superseded_by={successor} -->\n| a |\n| --- |\n| 1 |\n\n'
        f'<!-- measured: commit={new} code="pkg/models" table=quiet -->\n'
        '| a |\n| --- |\n| 2 |\n')

  write('quiet')
  by_table = {s.marker.fields['table']: s
              for s in stale.check_all(str(repo), stale.markers(str(repo)))}
  assert by_table['loaded'].state == 'superseded'
  assert by_table['loaded'].changed == [] and 'quiet' in by_table['loaded'].note
  assert stale.main(['--root', str(repo), '--strict']) == 0
  capsys.readouterr()
  # A successor that does not exist, or is itself stale, supersedes nothing.
  write('nosuch')
  assert stale.main(['--root', str(repo)]) == 1
  assert 'no table of that name' in capsys.readouterr().out
  write('quiet')
  (repo / 'pkg' / 'models' / 'dropout.py').write_text('RATE = 0.3\n')
  _git(repo, 'commit', '-qam', 'again')
  states = sorted(s.state for s in stale.check_all(str(repo), stale.markers(str(repo))))
  assert states == ['stale', 'stale']
  assert stale.main(['--root', str(repo)]) == 1
  assert 'that table is stale' in capsys.readouterr().out


def test_unknown_and_bad_commits_and_unmarked_sections(repo, capsys):
  _doc(repo, 'unknown')
  [m] = stale.markers(str(repo))
  assert stale.check(str(repo), m).state == 'unknown'
  assert stale.main(['--root', str(repo)]) == 0
  _doc(repo, 'deadbeef')
  [m] = stale.markers(str(repo))
  assert stale.check(str(repo), m).state == 'error'
  assert stale.main(['--root', str(repo)]) == 1
  # The second section has a table and "measured" in its heading, no marker.
  assert stale.unmarked_sections(str(repo)) == [('docs/results.md', 10, 'Speed, measured')]
  capsys.readouterr()
  stale.main(['--root', str(repo), '--unmarked'])
  assert 'unmarked     docs/results.md:10  Speed, measured' in capsys.readouterr().out


def test_a_marker_in_a_code_block_is_an_example(repo):
  (repo / 'docs' / 'x.md').write_text('```\n<!-- measured: commit=abc code="x" -->\n```\n')
  assert stale.markers(str(repo)) == []


def test_a_bad_marker_names_its_line(repo, capsys):
  (repo / 'docs' / 'x.md').write_text('\n<!-- measured: commit -->\n')
  assert stale.main(['--root', str(repo)]) == 2
  assert 'docs/x.md:2' in capsys.readouterr().err


def test_the_checkouts_own_markers_parse():
  # Every marker in this repository's docs is well formed and names code.
  found = stale.markers('.')
  assert found, 'the docs carry measured: markers'
  for m in found:
    assert m.code or m.commit == stale.UNKNOWN, f'{m.file}:{m.line} has no code='
    for key in ('jax', 'cpu'):
      assert key in m.fields, f'{m.file}:{m.line} lacks {key}='
