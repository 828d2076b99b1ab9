"""Converting video files into training copies: JPG frame folders, HDF5 files, short-GOP mp4, flow.

Layout: ``SRC/<class>/<video>.<ext>`` -> ``DST/<class>/<stem><suffix>``; for ``activitynet``
SRC is flat: ``SRC/<video>.<ext>`` -> ``DST/<stem><suffix>``. Every regular file is tried
whatever its extension (hidden files such as ``.DS_Store`` are ignored); what FFmpeg cannot read
as a video (text, still images, audio only, empty or truncated files) is reported as a failure.

- ``frames``: decoding a source into scaled RGB frames (``FrameReader``) and JPEG encoding;
- ``writers``: one source video -> one output (jpg folder, hdf5, mp4), and ``encode_video``;
- ``flow``: optical flow into the ``video_u``/``video_v`` HDF5 layout;
- ``runner``: a dataset tree through temp names and a process pool, with a summary.

Each video is written to a temp name beside its target (``.<name>.tmp-<16 hex digits>``) and
renamed when complete, so an existing target is a finished video and is skipped on rerun; temp
names left by killed runs are removed at the start of the next run (do not point two runs at
one DST at the same time). A decoding error in the middle of a file keeps the frames decoded
before it and is reported as a warning; a video with no decoded frame is a failure and leaves
nothing behind. A worker process that dies fails only the video it was converting.
"""
