"""Chinese text through both tokenizers.

WordPiece must split CJK characters as BERT's BasicTokenizer does (each
character of the CJK ideograph blocks is its own word; kana and hangul are
not), checked against transformers' pure-Python BertTokenizerLegacy and its
tokenizers-backed BertTokenizer on a tiny vocabulary that knows the
characters (the real uncased vocabulary of test_wordpiece_parity.py makes
most simplified characters [UNK], which hides mistakes). A SentencePiece model
trained on Chinese lines covers them without [UNK] and round-trips; that it
pretrains is checked end to end by tests/test_guide.py (docs/guide.zh.md).
"""

import unicodedata

import pytest

from bert_jax import text

transformers = pytest.importorskip('transformers')
from transformers.models.bert import tokenization_bert_legacy  # pylint: disable=g-import-not-at-top,g-bad-import-order

LINES = [
    '今天天气很好，我们去公园散步。',
    '这部电影非常精彩，演员的表演很自然。',
    '这家餐厅的菜太咸了，服务也很慢。',
    '机器学习是人工智能的一个分支。',
    '北京是中国的首都，有很多名胜古迹。',
    '他每天早上六点起床，然后去跑步。',
    # Words that recur, so SentencePiece has multi-character pieces to learn.
    '我们在公园里看电影。',
    '公园旁边的餐厅很好，我们常去。',
    '这家餐厅的电影海报很好看。',
]
TEXTS = LINES + [
    'BERT模型在2018年发布，GPU训练很快！',       # no spaces between scripts
    '“引号”（括号）、顿号；全角ＡＢＣ１２３',      # full-width punctuation and letters
    '日本語のテキストと한국어 텍스트',            # kanji split; kana, hangul kept whole
    '㐀㐁 extension A and 𠀀 extension B',      # CJK extension blocks are split too
    '繁體中文與簡體中文混合',
    '  空格\t和\n换行  ',
    '',
]


def _vocab_file(tmp_path):
  """Specials, every character of TEXTS, and a few English pieces."""
  chars = sorted({c for t in TEXTS for c in t.lower() if not c.isspace()})
  pieces = ['bert', 'gp', '##u', 'and', 'extension', 'a', 'b', '##ert',
            '##20', '##18', '2018', 'ab', '##c', '123']
  vocab = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] + chars + pieces
  path = tmp_path / 'vocab.txt'
  path.write_text('\n'.join(dict.fromkeys(vocab)) + '\n', encoding='utf-8')
  return str(path)


def test_wordpiece_splits_cjk_as_bert(tmp_path):
  vocab = _vocab_file(tmp_path)
  ours = text.WordPieceTokenizer(vocab, do_lower_case=True)
  refs = [tokenization_bert_legacy.BertTokenizerLegacy(vocab, do_lower_case=True),
          transformers.BertTokenizer(vocab, do_lower_case=True)]
  for t in TEXTS:
    for ref in refs:
      assert ours.tokenize(t) == ref.tokenize(t), (type(ref).__name__, t)
      assert ours.encode(t).input_ids == ref(t)['input_ids'], t
  # Each ideograph is a word of its own (whole-word masking sees characters).
  enc = ours.encode('我们去公园')
  assert ours.tokenize('我们去公园') == ['我', '们', '去', '公', '园']
  assert enc.word_ids == [-1, 0, 1, 2, 3, 4, -1]
  # Kana and hangul are not split into characters (BERT's _is_chinese_char).
  assert 'の' not in ours.tokenize('日本語のテキスト')
  pair = ours.encode(LINES[0], pair=LINES[1])
  theirs = refs[0](LINES[0], LINES[1], return_token_type_ids=True)
  assert pair.input_ids == theirs['input_ids']
  assert pair.token_type_ids == theirs['token_type_ids']


def test_trained_tokenizers_cover_chinese(tmp_path):
  wp = text.train_wordpiece(LINES * 3, vocab_size=500, out_dir=str(tmp_path / 'wp'))
  for line in LINES:
    pieces = wp.tokenize(line)
    assert pieces == [c for c in line], pieces  # one piece per character
  sp = text.train_sentencepiece(LINES * 20, vocab_size=200,
                                out_dir=str(tmp_path / 'sp'))
  for line in LINES:
    enc = sp.encode(line)
    assert sp.unk_id not in enc.input_ids, sp.tokenize(line)
    # SentencePiece's default nmt_nfkc normalisation makes full-width
    # punctuation half-width ('，' -> ','), as in ALBERT's and XLNet's models.
    assert sp.decode(enc.input_ids) == unicodedata.normalize('NFKC', line)
  # It learns pieces longer than one character, unlike WordPiece here.
  assert any(len(p.lstrip('▁')) > 1 for l in LINES for p in sp.tokenize(l))
  reloaded = text.load_tokenizer(str(tmp_path / 'sp'))
  assert reloaded.encode(LINES[0]).input_ids == sp.encode(LINES[0]).input_ids
