"""The pretraining objectives: the one table of their names and what they mean.

Everything that takes an objective name (`config.data.objective`, the
`prepare` command line, the example maker, the pretraining task) reads it here,
so that adding or renaming an objective is a change to this table only.

  obj = objectives.get(config.data.objective)
  if obj.pairs: ...                  # [CLS] A [SEP] B [SEP] rows
  if obj.sentence_head != 'none': ...  # a 2-way head on [CLS] (NSP or SOP)
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Objective:
  """One pretraining objective.

  Attributes:
    name: The config value: 'mlm', 'mlm_nsp' or 'mlm_sop'.
    sentence_head: The sentence-level task trained beside MLM on the [CLS]
      output: 'none', 'nsp' (next-sentence prediction) or 'sop' (sentence-order
      prediction). Its label is the examples' `nsp_label`.
    pairs: Examples are built as sentence pairs, `[CLS] A [SEP] B [SEP]` with
      token types 0 then 1; otherwise as one segment, `[CLS] tokens [SEP]`.
    description: One line: how examples are built and labelled.
  """
  name: str
  sentence_head: str
  pairs: bool
  description: str


OBJECTIVES: dict[str, Objective] = {
    o.name: o for o in (
        Objective(
            name='mlm', sentence_head='none', pairs=False,
            description=(
                'Masked LM only: one segment a row, [CLS] tokens [SEP], cut '
                'from one stream of all documents (a [SEP] between documents; '
                'a sentence may be cut at a row end), RoBERTa-style, so rows '
                'are full; nsp_label is always 0.')),
        Objective(
            name='mlm_nsp', sentence_head='nsp', pairs=True,
            description=(
                'BERT: A = the first whole sentences of a chunk of one '
                'document; half of the time (always when the chunk is one '
                'sentence) B is text from a random other document, from a '
                'random sentence on (label 1, and the unused sentences start '
                'the next example), otherwise the sentences that follow A '
                '(label 0).')),
        Objective(
            name='mlm_sop', sentence_head='sop', pairs=True,
            description=(
                'ALBERT: A and B are consecutive whole sentences of one '
                'document, swapped half of the time (label 1; in order, label '
                '0); a chunk of a single sentence takes B from a random other '
                'document instead (label 1), as ALBERT does.')),
    )
}
NAMES: tuple[str, ...] = tuple(OBJECTIVES)


def get(name: str) -> Objective:
  """The objective called NAME.

  Raises:
    ValueError: If NAME is not an objective; the message names the config
      field `data.objective`, the value and the valid choices.
  """
  try:
    return OBJECTIVES[name]
  except (KeyError, TypeError):  # TypeError: an unhashable value.
    raise ValueError(f'data.objective={name!r} is not one of {NAMES}') from None
