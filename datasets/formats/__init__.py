"""File formats without torch: annotation and result JSON, metrics, reports, logs, atomic writes.

Everything here imports only the standard library (and PyAV/numpy/PIL where a module says
so), so the command-line tools that build annotations or score results start fast and run
where torch is not installed.
"""
