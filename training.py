"""One training epoch: forward, loss, backward, step, logging.

Not implemented yet: lands with the training-loop issue (main.py).
"""
