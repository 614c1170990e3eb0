"""SentencePiece tokenizer (ALBERT/T5-style vocabularies), via `sentencepiece`.

Models trained by `train_tokenizer.train_sentencepiece` put the BERT specials
first: `[PAD]`=0, `[UNK]`=1, `[CLS]`=2 (SentencePiece's BOS), `[SEP]`=3 (EOS)
and `[MASK]`=4 (a control symbol, so typing "[MASK]" in text cannot produce
it). Foreign models are mapped as well as they allow; see
`SentencePieceTokenizer`.
"""

from collections.abc import Sequence
import logging
import os

import sentencepiece as spm

from bert_jax import storage
from bert_jax.errors import UserInputError
from bert_jax.text import base

MODEL_FILE = 'spiece.model'
PAD, UNK, CLS, SEP, MASK = '[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'
# SentencePiece marks the start of a word (the space before it) with this.
WORD_START = '\u2581'


class SentencePieceTokenizer(base.Tokenizer):
  """A SentencePiece model behind the BERT tokenizer interface.

  Special ids are looked up by piece, BERT names first, then ALBERT/XLNet
  style `<pad>` `<cls>` `<sep>` `<mask>`, then SentencePiece's own ids:

  - pad: `[PAD]`, `<pad>`, the model's pad id, else the unk id.
  - cls: `[CLS]`, `<cls>`, else the model's BOS id; ValueError if none.
  - sep: `[SEP]`, `<sep>`, else the model's EOS id; ValueError if none.
  - mask: `[MASK]`, `<mask>`, else the unk id, with a warning: masked
    positions then read as unknown tokens, which is enough to pretrain with
    but not what the model may have been trained with.

  A new word starts at every piece that begins with '▁'.
  """

  kind = 'sentencepiece'

  def __init__(self, model_file: str, do_lower_case: bool = False):
    """Loads a model.

    Args:
      model_file: A SentencePiece .model file.
      do_lower_case: Lower-case text before encoding it (the model itself
        does not).

    Raises:
      FileNotFoundError: If `model_file` does not exist.
      UserInputError: If the file is not a SentencePiece model, or the model
        has no piece to use as [CLS] or [SEP].
    """
    if not storage.isfile(model_file):
      raise FileNotFoundError(f'SentencePiece model not found: {model_file}')
    self.model_file = model_file
    self._do_lower_case = do_lower_case
    with storage.local_copy(model_file) as local:  # spm reads local files.
      try:
        self._sp = spm.SentencePieceProcessor(model_file=local)
      except (RuntimeError, OSError) as e:  # spm: "could not parse ModelProto".
        raise UserInputError(
            f'{model_file}: not a readable SentencePiece model ({e}); expected '
            'the .model file spm_train (or bert_jax.text) wrote') from e
    sp = self._sp
    unk = sp.unk_id()
    pad = self._find(PAD, '<pad>')
    if pad is None:
      pad = sp.pad_id() if sp.pad_id() >= 0 else unk
    cls = self._find(CLS, '<cls>')
    if cls is None and sp.bos_id() >= 0:
      cls = sp.bos_id()
    sep = self._find(SEP, '<sep>')
    if sep is None and sp.eos_id() >= 0:
      sep = sp.eos_id()
    for name, found in ((CLS, cls), (SEP, sep)):
      if found is None:
        raise UserInputError(
            f'SentencePiece model {model_file} has no piece to use as {name} '
            f'(looked for {name}, <{name[1:-1].lower()}> and the model\'s '
            f'{"BOS" if name == CLS else "EOS"} id)')
    mask = self._find(MASK, '<mask>')
    if mask is None:
      logging.warning(
          'SentencePiece model %s has no [MASK] or <mask> piece; masked '
          'positions will use the unknown id %d', model_file, unk)
      mask = unk
    self._special = {PAD: pad, UNK: unk, CLS: cls, SEP: sep, MASK: mask}
    self.special_ids = frozenset(self._special.values())

  def _find(self, *pieces: str) -> int | None:
    """Id of the first of `pieces` in the vocabulary, or None."""
    for piece in pieces:
      i = self._sp.piece_to_id(piece)
      # piece_to_id answers unk for an unknown piece; check it round-trips.
      if self._sp.id_to_piece(i) == piece:
        return i
    return None

  @property
  def vocab_size(self) -> int:
    return self._sp.get_piece_size()

  @property
  def pad_id(self) -> int:
    return self._special[PAD]

  @property
  def unk_id(self) -> int:
    return self._special[UNK]

  @property
  def cls_id(self) -> int:
    return self._special[CLS]

  @property
  def sep_id(self) -> int:
    return self._special[SEP]

  @property
  def mask_id(self) -> int:
    return self._special[MASK]

  @property
  def do_lower_case(self) -> bool:
    return self._do_lower_case

  def _prepare(self, text: str) -> str:
    return text.lower() if self._do_lower_case else text

  def tokenize(self, text: str) -> list[str]:
    return self._sp.encode(self._prepare(text), out_type=str)

  def encode_words(self, text: str) -> tuple[list[int], list[int]]:
    ids = self._sp.encode(self._prepare(text))
    words, current = [], -1
    for i in ids:
      # The first piece opens word 0 even without a '▁' (a model trained
      # without the dummy prefix).
      if current < 0 or self._sp.id_to_piece(i).startswith(WORD_START):
        current += 1
      words.append(current)
    return ids, words

  def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
    """Decodes ids; kept specials appear as their pieces, space-separated."""
    parts, run = [], []
    for i in (int(i) for i in ids):
      if i in self.special_ids and i != self.unk_id:
        # SentencePiece drops control pieces when decoding, so specials are
        # spelled out here when the caller wants them.
        if run:
          parts.append(self._sp.decode(run))
          run = []
        if not skip_special_tokens:
          parts.append(self.id_to_token(i))
      else:
        run.append(i)
    if run:
      parts.append(self._sp.decode(run))
    return ' '.join(p for p in parts if p)

  def id_to_token(self, i: int) -> str:
    if not 0 <= int(i) < self.vocab_size:
      raise ValueError(
          f'id {i} is out of range for a vocabulary of {self.vocab_size}')
    return self._sp.id_to_piece(int(i))

  def token_to_id(self, t: str) -> int:
    i = self._find(t)
    return self.unk_id if i is None else i

  def save(self, directory: str) -> None:
    """Writes spiece.model and tokenizer_config.json."""
    storage.makedirs(directory)
    # From memory, so saving works even if the source file has gone.
    with storage.open_file(os.path.join(directory, MODEL_FILE), 'wb') as f:
      f.write(self._sp.serialized_model_proto())
    self._write_config(directory)
