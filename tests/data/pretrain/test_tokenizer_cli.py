"""The tokenizer-training command line (bert_jax.data.pretrain.tokenizer_cli)."""

import os
import subprocess
import sys
import types

import pydoc_data.topics
import pytest

from bert_jax import text
from bert_jax.data.pretrain import corpora
from bert_jax.data.pretrain import tokenizer_cli

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


@pytest.fixture(scope='module')
def corpus():
  """About 1,500 English sentences from Python's own help pages."""
  lines = []
  for key in sorted(pydoc_data.topics.topics):
    lines += [l.strip() for l in pydoc_data.topics.topics[key].splitlines()
              if len(l.strip()) > 20]
  return lines[:1500]


def _check_specials(tok):
  assert [tok.id_to_token(i) for i in range(5)] == [
      '[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']


def test_run_with_stub_corpus(corpus, tmp_path, monkeypatch):
  docs = [corpus[i:i + 10] for i in range(0, len(corpus), 10)]
  seen = []

  def load_corpus(spec):
    seen.append(spec)
    yield from docs
  # Stands in for the corpus reader, so this tests only the plumbing.
  monkeypatch.setattr(tokenizer_cli, 'corpora',
                      types.SimpleNamespace(load_corpus=load_corpus))
  assert list(tokenizer_cli.corpus_sentences(['x', 'y'], max_documents=3)) == (
      docs[0] + docs[1] + docs[2])
  assert len(list(tokenizer_cli.corpus_sentences(['x', 'y']))) == (
      2 * len(corpus))
  assert seen == ['x', 'x', 'y']  # Lazily: the first run never needed 'y'.
  tok = tokenizer_cli.run(['x'], 'sentencepiece', 300, str(tmp_path / 'sp'))
  assert not tok.do_lower_case and tok.vocab_size == 300
  tok = tokenizer_cli.run(['x'], 'sentencepiece', 300, str(tmp_path / 'sp2'),
                          lowercase=True)
  assert tok.do_lower_case
  with pytest.raises(ValueError, match='--corpus'):
    tokenizer_cli.run([], 'wordpiece', 300, str(tmp_path / 'none'))


def _cli(*args):
  cmd = [sys.executable, '-m', 'bert_jax.data.pretrain.tokenizer_cli', *args]
  return subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                        check=False, cwd=REPO)


def test_cli(corpus, tmp_path):
  path = tmp_path / 'corpus.txt'  # BERT's format: blank lines between docs.
  docs = [corpus[i:i + 10] for i in range(0, len(corpus), 10)]
  path.write_text('\n\n'.join('\n'.join(d) for d in docs) + '\n')
  assert len(list(corpora.load_corpus(str(path)))) == len(docs)
  out = tmp_path / 'out'
  proc = _cli(f'--corpus={path}', '--kind=wordpiece', '--vocab_size=300',
              f'--out={out}', '--nolowercase', '--max_documents=100')
  assert proc.returncode == 0, proc.stderr
  assert 'RuntimeWarning' not in proc.stderr
  tok = text.load_tokenizer(str(out))
  assert isinstance(tok, text.WordPieceTokenizer) and not tok.do_lower_case
  _check_specials(tok)


def test_cli_bad_flags(tmp_path):
  proc = _cli('--corpus=builtin', '--kind=bpe', '--vocab_size=300',
              f'--out={tmp_path}')
  assert proc.returncode != 0
  assert 'bpe' in proc.stderr and 'wordpiece' in proc.stderr
