"""Video as a stream: frames decoded one at a time, model clips over a rolling window, their scores in time.

``streams.frames`` opens a source and yields its frames with their times; ``streams.windows``
turns them into the checkpoint's clips as they arrive, holding no more frames than one clip;
``streams.segments`` merges per-window scores into labelled segments; ``streams.timeline``
runs a model over a whole video that way (``inference.py --timeline``).
"""
