"""A training run on disk: its result path, records, logs and checkpoints, and resuming it.

- ``run_lock``: one run per result path (``<result_path>/.lock``), stale locks taken over safely;
- ``run_logs``: ``train.log``/``val.log``/``train_batch.log`` (the original's TSV columns) and TensorBoard;
- ``history``: ``history.log`` (one line per invocation) and the options files ``opts.json``/``opts_eval.json``;
- ``run_config``: a recorded ``opts.json`` read back as flag defaults (``--config``: re-run from a record);
- ``checkpoint_files``: checkpoint names (``save_<epoch>.pth``, ``save_latest.pth``, ``save_best.pth``) and pruning;
- ``position``: where a preempted epoch stands, and continuing it on the same or another topology;
- ``run_state``: the model, optimizer, schedule and progress of a run, saved and restored exactly (torch);
- ``stopping``: stop signals, dead DataLoader workers, workers that leave signals to the run (torch).

Everything but ``run_state`` and ``stopping`` imports without torch.
"""
