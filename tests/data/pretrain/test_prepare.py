"""Tests of bert_jax.data.pretrain.prepare: shards, units, workers, the CLI."""

import json
import os

import numpy as np
import pytest

from bert_jax.data import loader
from bert_jax.data.pretrain import prepare
from bert_jax.data.pretrain import unit_job

KW = {'max_seq_length': 32, 'objective': 'mlm_sop', 'dupe_factor': 2,
      'seed': 4, 'unit_mb': 0.002}  # 2 KiB units: the tiny corpus is 2.


def _prepare(path, tokenizer, out_dir, **kwargs):
  return prepare.prepare(path, tokenizer, str(out_dir), **{**KW, **kwargs})


def _records(out_dir):
  """Every shard's bytes by name, and meta.json without its 'run' block."""
  files = {n: open(os.path.join(out_dir, n), 'rb').read()
           for n in sorted(os.listdir(out_dir)) if n.endswith('.array_record')}
  meta = json.load(open(os.path.join(out_dir, prepare.META_FILE)))
  meta.pop('run')
  return files, meta


def test_round_trip_packed_by_default(tiny_corpus_path, fake_tokenizer,
                                      tmp_path):
  meta = _prepare(tiny_corpus_path, fake_tokenizer, tmp_path)
  assert meta['units'] == 2 and meta['max_examples_per_row'] == 8
  info = meta['splits']['train']
  assert len(info['files']) == 2 and info['num_rows'] <= info['num_examples']
  loaded = prepare.load_prepared(str(tmp_path))
  assert loaded['cls_positions'].shape == (info['num_rows'], 8)
  assert int(loaded['cls_weight'].sum()) == info['num_examples']
  real = (loaded['attention_mask'] > 0).mean()
  assert abs((1 - real) - info['padding_fraction']) < 1e-3
  source = prepare.PreparedSource(str(tmp_path))
  assert len(source) == info['num_rows']
  for k, v in source.take([3, 0]).items():
    np.testing.assert_array_equal(v, loaded[k][[3, 0]])
  batch = next(loader.make_loader(source, global_batch_size=4, seed=0))
  assert batch['input_ids'].shape == (4, 32)
  assert batch['nsp_label'].shape == (4, 8)


def test_one_example_per_row_when_packing_is_off(tiny_corpus_path,
                                                 fake_tokenizer, tmp_path):
  meta = _prepare(tiny_corpus_path, fake_tokenizer, tmp_path,
                  max_examples_per_row=1)
  loaded = prepare.load_prepared(str(tmp_path))
  assert sorted(loaded) == ['attention_mask', 'input_ids', 'nsp_label',
                            'token_type_ids', 'word_ids']
  assert len(loaded['input_ids']) == meta['splits']['train']['num_examples']


def test_workers_and_reruns_write_the_same_bytes(tiny_corpus_path,
                                                 real_vocab_path, tmp_path):
  one = _prepare(tiny_corpus_path, real_vocab_path, tmp_path / 'one',
                 workers=1, eval_fraction=0.3)
  two = _prepare(tiny_corpus_path, real_vocab_path, tmp_path / 'two',
                 workers=2, eval_fraction=0.3)
  assert one['run']['workers'] == 1 and two['run']['workers'] == 2
  assert _records(tmp_path / 'one') == _records(tmp_path / 'two')
  # Same arguments again: complete already, nothing redone.
  again = _prepare(tiny_corpus_path, real_vocab_path, tmp_path / 'one',
                   eval_fraction=0.3)
  assert again == one


def test_resume_keeps_good_units_and_redoes_broken_ones(
    tiny_corpus_path, fake_tokenizer, tmp_path):
  full = tmp_path / 'full'
  _prepare(tiny_corpus_path, fake_tokenizer, full)
  expected = _records(full)
  # A run killed after unit 0, during unit 1: meta.json never written,
  # unit 1's shard half there.
  cut = tmp_path / 'cut'
  _prepare(tiny_corpus_path, fake_tokenizer, cut)
  os.remove(cut / prepare.META_FILE)
  os.remove(unit_job.marker_path(str(cut), 1))
  shard = cut / json.load(open(unit_job.marker_path(
      str(full), 1)))['splits']['train']['file']
  shard.write_bytes(shard.read_bytes()[:100])
  meta = _prepare(tiny_corpus_path, fake_tokenizer, cut)
  assert meta['run']['units_reused'] == 1
  assert _records(cut) == expected
  # A shard changed after its marker was written: its checksum catches it.
  os.remove(cut / prepare.META_FILE)
  data = bytearray(shard.read_bytes())
  data[-20] ^= 0xFF
  shard.write_bytes(bytes(data))
  meta = _prepare(tiny_corpus_path, fake_tokenizer, cut)
  assert meta['run']['units_reused'] == 1
  assert _records(cut) == expected


def test_other_arguments_into_the_same_out_are_refused(
    tiny_corpus_path, fake_tokenizer, tmp_path):
  _prepare(tiny_corpus_path, fake_tokenizer, tmp_path)
  with pytest.raises(ValueError, match=r'other arguments \(seed: 4 then, 5 '
                     r'now\); use another --out'):
    _prepare(tiny_corpus_path, fake_tokenizer, tmp_path, seed=5)


def test_full_disk_gives_one_error_and_no_meta(tiny_corpus_path,
                                               real_vocab_path, tmp_path,
                                               monkeypatch, capsys):
  import errno  # pylint: disable=g-import-not-at-top
  from bert_jax.data.pretrain import shards  # pylint: disable=g-import-not-at-top
  calls = []

  def full(examples, path):
    calls.append(path)
    if len(calls) > 1:
      raise OSError(errno.ENOSPC, 'No space left on device', path)
    return real_write(examples, path)

  real_write = shards.write_shard
  monkeypatch.setattr(shards, 'write_shard', full)
  out = tmp_path / 'out'
  with pytest.raises(SystemExit) as e:
    prepare.main(['--corpus', tiny_corpus_path, '--tokenizer', real_vocab_path,
                  '--out', str(out), '--unit_mb', '0.002', '--workers', '1',
                  '--quiet'])
  assert e.value.code == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith('error: no space left')
  assert not (out / prepare.META_FILE).exists()


def test_command_line_progress_and_summary(tiny_corpus_path, real_vocab_path,
                                           tmp_path, capsys):
  out = tmp_path / 'out'
  meta = prepare.main([
      '--corpus', tiny_corpus_path, '--tokenizer', real_vocab_path,
      '--out', str(out), '--max_seq_length', '64', '--objective', 'mlm_nsp',
      '--eval_fraction', '0.2', '--workers', '1'])
  captured = capsys.readouterr()
  assert 'MiB read' in captured.err and 'documents' in captured.err
  assert 'examples in' in captured.out and '% padding' in captured.out
  assert 'MiB/s' in captured.out
  examples = prepare.load_prepared(str(out))
  assert examples['input_ids'].shape[1] == 64
  assert meta['objective'] == 'mlm_nsp' and 'eval' in meta['splits']
  quiet = tmp_path / 'quiet'
  prepare.main(['--corpus', tiny_corpus_path, '--tokenizer', real_vocab_path,
                '--out', str(quiet), '--quiet'])
  assert 'MiB read' not in capsys.readouterr().err


def test_missing_or_incomplete_output_fails_loudly(tiny_corpus_path,
                                                   fake_tokenizer, tmp_path):
  with pytest.raises(FileNotFoundError, match='meta.json is missing'):
    prepare.load_prepared(str(tmp_path / 'nothing'))
  _prepare(tiny_corpus_path, fake_tokenizer, tmp_path)
  with pytest.raises(ValueError, match="no split 'eval'"):
    prepare.load_prepared(str(tmp_path), 'eval')


def test_beam_direct_runner_writes_what_the_local_runner_does(
    tiny_corpus_path, real_vocab_path, tmp_path):
  pytest.importorskip('apache_beam')
  local = _prepare(tiny_corpus_path, real_vocab_path, tmp_path / 'local',
                   eval_fraction=0.3)
  beam = _prepare(tiny_corpus_path, real_vocab_path, tmp_path / 'beam',
                  eval_fraction=0.3, runner='beam',
                  beam_args=['--runner=DirectRunner',
                             '--direct_num_workers=2',
                             '--direct_running_mode=multi_threading'])
  assert beam['run']['runner'] == 'beam' and local['run']['runner'] == 'local'
  assert _records(tmp_path / 'local') == _records(tmp_path / 'beam')


def test_sigkill_mid_run_then_rerun_ends_as_an_uninterrupted_run(
    real_vocab_path, tmp_path):
  import signal  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  corpus = tmp_path / 'corpus.txt'
  doc = 'A sentence about the weather today.\nAnother one follows it here.\n\n'
  corpus.write_text(doc * 4000)  # ~260 KB: 64 units of 4 KiB
  args = ['--corpus', str(corpus), '--tokenizer', real_vocab_path,
          '--unit_mb', '0.004', '--workers', '1', '--quiet']
  full = tmp_path / 'full'
  prepare.main([*args, '--out', str(full)])
  cut = tmp_path / 'cut'
  proc = subprocess.Popen(
      [sys.executable, '-m', 'bert_jax.data.pretrain.prepare', *args,
       '--out', str(cut)], stdout=subprocess.DEVNULL,
      stderr=subprocess.DEVNULL)
  deadline = time.time() + 120
  while time.time() < deadline and not os.path.exists(
      unit_job.marker_path(str(cut), 5)):
    time.sleep(0.01)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not (cut / prepare.META_FILE).exists()  # Killed before the end.
  meta = prepare.main([*args, '--out', str(cut)])
  assert 6 <= meta['run']['units_reused'] < meta['units']
  assert _records(cut) == _records(full)
