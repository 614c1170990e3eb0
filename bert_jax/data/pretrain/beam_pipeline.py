"""`prepare --runner beam`: the same per-unit function as an Apache Beam
pipeline, for a cluster (Dataflow, Flink, Spark) or, in tests, the DirectRunner.

The pipeline is the smallest that shares the work: the planned units ->
reshuffle (spread over workers) -> `unit_job.run_unit`, which writes each
unit's shard and marker itself, straight to the output folder (gs:// on a
cluster). The launching process then checks every marker and writes
`meta.json`, exactly as the local runner does. Needs `pip install
'bert_jax[beam]'` here and on the workers (docs/pretraining.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bert_jax.data.pretrain import unit_job
from bert_jax.errors import UserInputError


def run(jobs: list[dict[str, Any]], pipeline_args: Sequence[str]) -> None:
  """Runs JOBS (one per unit) as a Beam pipeline with PIPELINE_ARGS."""
  try:
    import apache_beam as beam  # pylint: disable=g-import-not-at-top
    from apache_beam.options import pipeline_options  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise UserInputError("--runner beam needs Apache Beam: pip install "
                         "'bert_jax[beam]'") from e
  options = pipeline_options.PipelineOptions(list(pipeline_args))
  with beam.Pipeline(options=options) as p:
    _ = (p
         | 'Units' >> beam.Create(jobs, reshuffle=False)
         | 'Spread' >> beam.Reshuffle()
         | 'Prepare' >> beam.Map(unit_job.run_unit))
