"""Sliding-window inference per video, written as the original's inference JSON.

Not implemented yet: lands with the training-loop issue (main.py).
"""
