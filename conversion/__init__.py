"""Converting video files into training copies: JPG frame folders, HDF5 files, short-GOP mp4, flow.

Layout: ``SRC/<class>/<video>.<ext>`` -> ``DST/<class>/<stem><suffix>``; for ``activitynet``
SRC is flat: ``SRC/<video>.<ext>`` -> ``DST/<stem><suffix>``. Files with a video extension
(``video_files.VIDEO_EXTENSIONS``, the list the annotation builders use) are converted; what
FFmpeg cannot read as a video (text, still images, audio only, empty or truncated files) is
reported as a failure. Everything else is ignored and counted in the summary by extension
(``ignored: 3 .txt, 1 .json``), and class folders without videos are named; a SRC with nothing
to convert (videos directly inside instead of in class folders, say) is an error, exit code 2.

- ``frames``: decoding a source into scaled RGB frames (``FrameReader``) and JPEG encoding;
- ``writers``: one source video -> one output (jpg folder, hdf5, mp4), and ``encode_video``;
- ``flow``: optical flow into the ``video_u``/``video_v`` HDF5 layout;
- ``sources``: the videos of a tree, what is ignored, layout mistakes;
- ``temps``: temp names owned by their process;
- ``runner``: a dataset tree through temp names and a process pool, with a summary;
- ``demo_videos``: the demo's synthetic dataset, rendered with ``writers``.

Each video is written to a temp name beside its target (``.<name>.tmp-<host>-<pid>-<start>-<random>``)
and renamed when complete, so an existing target is a finished video and is skipped on rerun; temp
names left by killed runs are removed at the start of the next run, only once their process has
ended, so two runs may share one DST (a video both convert is never reported as failed). A
decoding error in the middle of a file keeps the frames decoded before it and is reported as a warning; a video with no decoded frame is a failure and leaves
nothing behind. A worker process that dies fails only the video it was converting.
"""
