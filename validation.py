"""Validation: clip-level loss and accuracy plus video-level top-1/top-5 from the same pass.

Not implemented yet: lands with the training-loop issue (main.py).
"""
