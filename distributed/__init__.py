"""Several processes as one run: the collectives every rank calls alike, the agreement each step ends with,
and starting the processes (torchrun, the original's spawned form) with their exit codes.

``collectives``: ``any_rank``, ``reduce_sums``, ``broadcast_object``, ``broadcast_buffers`` (identities in a
single process); ``agreement``: ``agree`` and ``on_rank_zero``; ``launch``: ``launch``.
"""
