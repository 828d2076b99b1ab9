"""Opening a checkpoint file without running code from it.

A ``.pth`` file is a pickle, and a pickle can call any Python function while it is read. Files
are therefore always read with ``torch.load(weights_only=True)``: tensors, containers, numbers,
strings and the globals of ``SAFE_GLOBALS``. A file that needs any other global is refused with
a ``CheckpointError`` naming it; ``trust=True`` (``--trust_checkpoint``) is the only way to read
it, by full unpickling, and says so with a warning. Files that are not checkpoints at all (a
JSON file, an image, a video) get a one-line error saying what they look like.
"""
import collections
import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any, Optional, Union

import torch

from common.errors import UserError
from common.faults import OneLineWarning

PathLike = Union[str, os.PathLike]

# Exactly the globals that real checkpoints need beyond torch's own tensor and dtype types:
# the original's MultiStepLR state keeps its milestones in a Counter, and state_dicts are
# OrderedDicts. (Recent torch versions allow both by default; older ones need them listed.)
SAFE_GLOBALS = (collections.Counter, collections.OrderedDict)

TRUST_HELP = ('Also load checkpoints that hold Python objects beyond tensors, by full unpickling: '
              'such a file can run any code on this machine as it loads, so pass this only for '
              'files whose source you trust (default: refuse them)')

# (leading bytes, offset, what a file starting with them is) for files often mistaken for checkpoints
_SIGNATURES = [
    (b'{', 0, 'JSON text'), (b'[', 0, 'JSON text'), (b'\xff\xd8\xff', 0, 'a JPEG image'),
    (b'\x89PNG', 0, 'a PNG image'), (b'GIF8', 0, 'a GIF image'), (b'ftyp', 4, 'an MP4/MOV video'),
    (b'\x1aE\xdf\xa3', 0, 'a Matroska/WebM video'),
    (b'\x89HDF', 0, 'an HDF5 file'), (b'\x93NUMPY', 0, 'a NumPy array file'),
    (b'moov', 4, 'an MP4/MOV video'), (b'mdat', 4, 'an MP4/MOV video'), (b'wide', 4, 'an MP4/MOV video'),
    (b'\x00\x00\x01\xba', 0, 'an MPEG program stream video'), (b'\x00\x00\x01\xb3', 0, 'an MPEG video'),
    (b'OggS', 0, 'an Ogg file'), (b'FLV', 0, 'a Flash video'), (b'BM', 0, 'a BMP image'),
    (b'RIFF', 0, 'a RIFF (AVI, WAV or WebP) file'),
]
_ZIP, _PICKLE = b'PK\x03\x04', b'\x80'


class CheckpointError(UserError):
    """A checkpoint that cannot be read, or whose weights do not fit the model."""


def not_a_checkpoint(path: PathLike) -> Optional[str]:
    """Why ``path`` cannot be a ``torch.save`` file, from its first bytes (None: it may be one)."""
    with open(path, 'rb') as f:
        head = f.read(512)
    if not head:
        return 'an empty file'
    if head.startswith(_ZIP):
        return _zip_problem(path)
    if head.startswith(_PICKLE) or head[257:262] == b'ustar':  # torch.save's legacy pickle, PyTorch < 0.1.10's tar
        return None
    for magic, offset, kind in _SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            return f'it looks like {kind}'
    return 'neither a zip archive nor a pickle'


def _zip_problem(path: PathLike) -> Optional[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as e:
        return f'a damaged or truncated zip archive: {e}'
    if any(n.endswith('/constants.pkl') for n in names):
        return 'a TorchScript archive: load it with torch.jit.load'
    if not any(n.endswith('/data.pkl') for n in names):
        return 'a zip archive without the data.pkl that torch.save writes'
    return None


def refusal(message: str) -> str:
    """What the weights-only unpickler refused, as ``needs the Python global 'x.y'``, from its error message."""
    found = (re.search(r'GLOBAL (\S+) was not an allowed global', message)
             or re.search(r'unsupported GLOBAL (\S+) whose module', message))
    if found:
        name = found.group(1)
        return f"needs the Python global '{name if '.' in name else 'builtins.' + name}'"  # torch drops 'builtins.'
    detail = re.search(r'WeightsUnpickler error:\s*(.+)', message)
    return ('uses a pickle instruction that weights-only loading refuses '
            f'({detail.group(1).strip() if detail else message.strip().splitlines()[0]})')


def _weights_only(path: Path) -> Any:
    with torch.serialization.safe_globals(list(SAFE_GLOBALS)), warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='Detected pickle protocol')  # torch's noise; refusal says it
        return torch.load(path, map_location='cpu', weights_only=True)


def torch_load_cpu(path: PathLike, trust: bool = False) -> Any:
    """``torch.load`` onto the CPU, weights-only unless ``trust`` and the file needs more.

    Raises ``CheckpointError`` (one line, naming the file) for a file that is not a checkpoint,
    and for one that needs a global beyond ``SAFE_GLOBALS`` when ``trust`` is False.
    """
    path = Path(path)
    try:
        why = not_a_checkpoint(path)
    except OSError as e:
        raise CheckpointError(f'{path}: cannot read ({e.strerror or e})') from None
    if why:
        raise CheckpointError(f'{path}: not a PyTorch checkpoint ({why})')
    try:
        return _weights_only(path)
    except pickle.UnpicklingError as e:
        reason = refusal(str(e))
    if not trust:
        raise CheckpointError(f"{path}: refused to load: it {reason}, which could run code; "
                              "if you trust the file's source, pass --trust_checkpoint (trust=True in Python)")
    warnings.warn(OneLineWarning(f'{path}: loaded by full unpickling (--trust_checkpoint) because it {reason}; '
                                 'any code in the file has run'), stacklevel=2)
    return torch.load(path, map_location='cpu', weights_only=False)
