"""Command-line tools, each runnable as ``python -m util_scripts.NAME``."""
