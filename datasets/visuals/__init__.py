"""Pictures for people who do not read TSV files (numpy and Pillow, no torch).

``overlay``: the labels and the heat map drawn on a video frame (``inference.py --annotate``);
``sheet``: the correct and wrong examples of an inference subset (``<subset>_examples.png``);
``curves``: the training curves from ``train.log`` and ``val.log`` (``curves.png``).
"""
