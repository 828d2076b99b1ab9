"""Scoring results (standard library only): metrics, the results JSON, the eval_accuracy protocol, reports.

- ``metrics``: top-k accuracy and mean per-class accuracy of video scores;
- ``results_json``: the inference JSON (``{"results": {video: [{"label", "score"}]}}``), read safely;
- ``scoring``: a results JSON scored against an annotation file (``eval_accuracy``, ``fuse_results``);
- ``reports``: per-class accuracy and the confusion table beside a results file.
"""
