"""Temporal transforms on frame-index lists: random/center/even crops, sliding windows, subsampling.

Not implemented yet: lands with the data-loading issue, with the original's clip placement
(and its stride and off-by-one bugs fixed).
"""
