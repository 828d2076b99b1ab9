"""Spatial transforms on whole uint8 clips (C x T x H x W): crops, flips, normalisation.

Not implemented yet: the data pipeline (crops, flips, colour jitter, normalisation with the
original's mean/std tables) lands with the data-loading issue.
"""
