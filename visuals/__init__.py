"""Pictures for people who do not read TSV files.

``overlay``: the labels and the heat map drawn on a video frame (``inference.py --annotate``);
``sheet``: the correct and wrong examples of an inference subset (``<subset>_examples.png``);
``curves``: the training curves from ``train.log`` and ``val.log`` (``curves.png``) — these three
need numpy and Pillow, not torch; ``annotate``: a video written back with the model's labels (and
``cam``'s Grad-CAM heat maps) on every frame, and the example strips (torch).
"""
