"""The on-disk data formats, without torch: annotation JSON, video files and their frame tables, HDF5 images.

Everything here imports only the standard library (and PyAV/numpy/PIL where a module says
so), so the command-line tools that build annotations start fast and run where torch is not
installed. Run records, results and metrics have their own packages (``runs``, ``evaluation``).
"""
