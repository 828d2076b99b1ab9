"""Tar shards of a dataset (issue 25): ``writer`` (``util_scripts.write_shards``), ``reader`` (samples out of
shards from a folder, a URL or a pipe), ``samples`` (the records and loader the clip datasets use), ``order``
(the epoch's order over ranks and DataLoader workers, resumable). The index format: ``datasets.formats.shard_index``."""
