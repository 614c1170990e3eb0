"""The fine-tuning flow: task readers (GLUE, CoNLL, SQuAD, local files, the
built-in topic sentences) that turn a task's records into features."""
