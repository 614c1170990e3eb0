"""The pretraining flow: corpus -> sentences -> examples -> packed rows -> shards.

`corpora` reads the text (built-in, files, TFDS), `examples` builds sentence
pairs for the objectives named in `objectives`, `packing` fills rows,
`prepare` writes shards once for a corpus-scale run and `inputs` gives the
trainer its rows (prepared shards or built on the fly); `masking` runs on
device inside the jitted step.
"""
