"""Video datasets (jpg frame folders, hdf5, encoded video) and annotation JSON handling.

Not implemented yet: lands with the data issue.
"""
