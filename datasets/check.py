"""Pre-flight scan of a dataset: every problem a training run would meet, before it starts.

Checks every video of every subset: missing on disk, empty (no frames on record), unreadable
(the file or folder cannot be opened), missing frames (fewer on disk than the annotation
says), truncated (a video file with far fewer frames than its header declares), bad frames
(cannot be decoded), odd-size frames (another size than the video's majority size,
``datasets.frame_sizes``: the loader replaces them as bad frames), uncounted or misnumbered
frames (a video decodes to more frames than its frame table lists, or to frames
at other times, as a wrong stored table would make it: the loader would miss or misnumber
them), too short (fewer frames than a clip: it will be
loop-padded). ``too short`` is harmless (the clip is loop-padded); the others lose data. Entries the
loader drops (``annotation_faults``: unknown subset, misspelled key, label not in ``labels``) are
problems too, and a file built for another ``--file_type`` is a one-line error.
"""
import functools
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import numpy as np

from common.pool import worker_pool
from common.progress import progress
from datasets.annotations import VideoRecord, load_video_list
from datasets.decode import VideoReadError, decode_image
from datasets.duplicates import duplicate_problems, signature
from datasets.formats.annotation_faults import Fault
from datasets.formats.annotation_json import SUBSETS
from datasets.formats.frame_table_file import table_path
from datasets.formats.video_layout import IMAGE_TEMPLATE, count_frames, unreadable_errors
from datasets.formats.video_files import (UNREADABLE, declared_frames, declared_size, frame_table, open_video,
                                          truncation, video_stream)
from datasets.frame_sizes import Size, odd_sized
from datasets.loaders import Hdf5Loader, JpgLoader
from datasets.video_loader import build_video_index

Problem = Tuple[str, str, str, str]  # (video id, subset, problem, detail)
HARMLESS = {'too short'}
NEAR_DUPLICATE = 'near duplicate'  # loses no data, but inflates validation: reported, the check fails


def _names(items: Sequence[str], limit: int = 3) -> str:
    return ', '.join(items[:limit]) + (f' and {len(items) - limit} more' if len(items) > limit else '')


def _frames_to_check(frames: range, quick: bool) -> List[int]:
    if not quick or len(frames) <= 3:
        return list(frames)
    return [frames[0], frames[len(frames) // 2], frames[-1]]


def _odd_sizes(sizes: Sequence[Tuple[str, Size]], reference: Optional[Size]) -> List[Tuple[str, str]]:
    odd = odd_sized(sizes, reference)
    if not odd:
        return []
    height, width = reference
    return [('odd-size frames', f'{len(odd)} not {width}x{height} as the rest: {_names(odd)}')]


def check_jpg(record: VideoRecord, quick: bool) -> List[Tuple[str, str]]:
    """Missing and undecodable frames of a frame folder, and frames of another size than the rest."""
    missing, bad, sizes = [], [], []
    for i in _frames_to_check(record.frames, quick):
        name = IMAGE_TEMPLATE.format(i)
        try:
            sizes.append((name, tuple(decode_image((record.path / name).read_bytes()).shape[1:])))
        except FileNotFoundError:
            missing.append(name)
        except (OSError, ValueError):
            bad.append(name)
    out = []
    if missing:
        out.append(('missing frames', f'{len(missing)}: {_names(missing)}'))
    if bad:
        out.append(('bad frames', f'{len(bad)}: {_names(bad)}'))
    return out + _odd_sizes(sizes, JpgLoader().video_size(str(record.path)))


def check_hdf5(record: VideoRecord, quick: bool, names: Sequence[str] = ('video',)) -> List[Tuple[str, str]]:
    """Readability, length and decodable frames of an hdf5 video."""
    import h5py
    try:
        with h5py.File(record.path, 'r') as h5:
            absent = [n for n in names if n not in h5]
            if absent:
                return [('unreadable', f"no dataset {', '.join(absent)}")]
            n = min(len(h5[name]) for name in names)
            out = []
            if n < record.frames.stop:
                out.append(('missing frames', f'{record.frames.stop - n} beyond the {n} stored'))
            bad, sizes = [], []
            for i in _frames_to_check(range(record.frames.start, min(n, record.frames.stop)), quick):
                for name in names:
                    try:
                        image = decode_image(bytes(h5[name][i]), 'RGB' if len(names) == 1 else 'L')
                        sizes.append((f'{name}[{i}]', tuple(image.shape[1:])))
                    except (OSError, ValueError):
                        bad.append(f'{name}[{i}]')
            if bad:
                out.append(('bad frames', f'{len(bad)}: {_names(bad)}'))
            return out + _odd_sizes(sizes, Hdf5Loader(names).video_size(h5))
    except (OSError, RuntimeError) as e:
        return [('unreadable', str(e).splitlines()[0])]


def check_video(record: VideoRecord, quick: bool) -> List[Tuple[str, str]]:
    """Frames a video file's index promises against those it really decodes."""
    try:
        index = build_video_index(record.path)
    except VideoReadError as e:
        return [('unreadable', str(e).split(': ', 1)[-1])]
    out = []
    if len(index) < record.frames.stop:
        out.append(('missing frames', f'{record.frames.stop - len(index)} beyond the {len(index)} in the file'))
    table = frame_table(record.path)  # what the index was built from (cached)
    try:
        with open_video(record.path) as container:
            cut = truncation(len(index), declared_frames(video_stream(container)))
    except UNREADABLE:
        cut = ''
    if cut:  # a file cut short, or a stored frame table that lists too few frames
        out.append(('truncated', cut + (f'; or its stored table {table_path(record.path).name} is wrong: '
                                        'rewrite it with write_frame_tables --force' if table.stored else '')))
    if quick:
        return out
    decoded, sizes, misnumbered = 0, [], None
    try:
        with open_video(record.path) as container:
            stream = video_stream(container)
            reference = declared_size(stream)
            for frame in container.decode(stream):
                expected = table.pts[decoded] if decoded < len(table) else None
                if misnumbered is None and expected is not None and frame.pts != expected:
                    misnumbered = f'frame {decoded} decodes at time {frame.pts}, the frame table says {expected}'
                decoded += 1
                sizes.append((f'frame {decoded - 1}', (frame.height, frame.width)))
    except UNREADABLE as e:
        out.append(('bad frames', f'decoding stops after {decoded} of {len(index)} frames ({str(e).splitlines()[0]})'))
        return out
    hint = (f' (its stored table {table_path(record.path).name} is wrong: rewrite it with '
            'write_frame_tables --force)') if table.stored else ''
    if misnumbered:  # the loader would number the frames otherwise than the converters do
        out.append(('misnumbered frames', misnumbered + hint))
    if decoded < len(index):
        out.append(('bad frames', f'{len(index) - decoded} of {len(index)} frames do not decode'))
    elif decoded > len(index):  # frames the loader never reads
        out.append(('uncounted frames', f'{decoded} frames decode, the frame table lists {len(index)}' + hint))
    return out + _odd_sizes(sizes, reference)


def check_flow_pair(record: VideoRecord, quick: bool, roots: Tuple[Path, Path]) -> List[Tuple[str, str]]:
    """``--input_type rgb_flow``: the flow file of an RGB hdf5 file, checked as the paired loader reads it."""
    from datasets.paired import FLOW_DATASETS, PairedLoader
    loader = PairedLoader([roots])
    try:
        flow = loader.flow_file(record.path)
        loader.check_pair(record.path, flow)  # its frame count against the RGB file's
    except VideoReadError as e:
        return [('flow mismatch', str(e))]
    found = [(problem, f'flow {flow.name}: {detail}')
             for problem, detail in check_hdf5(replace(record, path=flow), quick, FLOW_DATASETS)]
    sizes = [Hdf5Loader(names)._reopened(path, Hdf5Loader(names).video_size)
             for path, names in ((record.path, ('video',)), (flow, FLOW_DATASETS))]
    if None not in sizes and sizes[0] != sizes[1]:
        (h, w), (fh, fw) = sizes
        found.append(('flow mismatch', f"{flow}: flow frames of {fw}x{fh} but the RGB file has {w}x{h}; make the "
                                       "flow with the RGB conversion's --size"))
    return found


def check_record(args: Tuple[VideoRecord, str, str, int, bool, str, Optional[Tuple[Path, Path]]]) -> List[Problem]:
    """Every problem of one video (run in a worker process)."""
    record, subset, file_type, sample_duration, quick, input_type, flow_roots = args
    if file_type == 'jpg':
        found = check_jpg(record, quick) if record.path.is_dir() else [('unreadable', 'not a folder')]
    elif file_type == 'hdf5':
        found = check_hdf5(record, quick, ('video_u', 'video_v') if input_type == 'flow' else ('video',))
        if input_type == 'rgb_flow' and flow_roots is not None:
            found += check_flow_pair(record, quick, flow_roots)
    else:
        found = check_video(record, quick)
    if len(record.frames) < sample_duration:
        found.append(('too short', f'{len(record.frames)} frames < {sample_duration}: loop-padded'))
    return [(record.video_id, subset, problem, detail) for problem, detail in found]


def no_segment(path: Path, file_type: str) -> Tuple[str, str]:
    """(problem, detail) of an entry with no frames on record, in the words the annotation builders use for
    the file on disk: unreadable (it cannot be opened or decoded), empty (no frames), or the record out of date."""
    try:
        n = count_frames(path, file_type)
    except unreadable_errors() as e:
        return 'unreadable', f'no frames on record: {str(e).splitlines()[0] or type(e).__name__}'
    if n == 0:
        return 'empty', 'no frames on record, none on disk'
    return 'empty', f'no frames on record but {n} on disk: rebuild the annotation file'


def hash_record(job: Tuple[VideoRecord, str]) -> Optional[np.ndarray]:
    """The near-duplicate signature of one video (``datasets.duplicates``), read as training reads it."""
    record, file_type = job
    return signature(_loader(file_type), record.path, record.frames)


@functools.lru_cache(maxsize=None)
def _loader(file_type: str) -> Any:
    from datasets.build import get_loader
    return get_loader(file_type)


def _mapped(function: Any, jobs: List[Any], n_jobs: int, desc: str) -> List[Any]:
    """``function`` over ``jobs``, in a pool of ``n_jobs`` workers where more than one, with a progress bar."""
    if n_jobs > 1 and len(jobs) > 1:
        with worker_pool(n_jobs) as pool:  # spawned workers that die with this process
            return list(progress(pool.map(function, jobs, chunksize=8), total=len(jobs), desc=desc, unit='videos'))
    return [function(job) for job in progress(jobs, total=len(jobs), desc=desc, unit='videos')]


def duplicates_across_split(records: Dict[str, Sequence[VideoRecord]], file_type: str, n_jobs: int,
                            max_bits: int) -> List[Problem]:
    """``--duplicates``: validation videos whose frames match a training video's (``datasets.duplicates``)."""
    jobs = [(r, file_type) for s in records for r in records[s]]
    hashes = iter(_mapped(hash_record, jobs, n_jobs, 'hashing'))
    signatures = {s: [next(hashes) for _ in records[s]] for s in records}
    return duplicate_problems(records, signatures, max_bits)


def scan(annotation: Path, video_root: Path, file_type: str, dataset: str = 'kinetics',
         sample_duration: int = 16, quick: bool = False, n_jobs: int = 1,
         input_type: str = 'rgb', flow_root: Optional[Path] = None,
         duplicate_bits: Optional[int] = None) -> Tuple[List[Problem], int]:
    """All problems of the dataset, and the number of videos listed (``flow_root``: ``rgb_flow``'s flow files;
    ``duplicate_bits``: also the near duplicates across the split, ``duplicates_across_split``)."""
    flow_roots = (Path(video_root), Path(flow_root)) if flow_root is not None else None
    problems: List[Problem] = []
    jobs = []
    listed = 0
    dropped: Set[Fault] = set()  # an entry of no subset is in every subset's list: report it once
    split: Dict[str, Sequence[VideoRecord]] = {}  # the training and validation records, for --duplicates
    for subset in SUBSETS:
        videos = load_video_list([annotation], [video_root], subset, file_type, dataset)
        if subset in ('training', 'validation'):
            split[subset] = videos.records
        new = [f for f in videos.dropped if f not in dropped]
        dropped.update(new)
        problems += [(f.video_id, f.subset, f.problem, f.detail) for f in new]
        listed += len(videos.records) + len(videos.missing) + len(videos.empty) + len({f.video_id for f in new})
        problems += [(vid, subset, 'missing', 'not on disk') for vid in videos.missing]
        problems += [(vid, subset, *no_segment(path, file_type)) for vid, path in zip(videos.empty, videos.empty_paths)]
        jobs += [(r, subset, file_type, sample_duration, quick, input_type, flow_roots) for r in videos.records]
    for found in _mapped(check_record, jobs, n_jobs, 'checking'):
        problems += found
    if duplicate_bits is not None:
        problems += duplicates_across_split(split, file_type, n_jobs, duplicate_bits)
    return problems, listed


def print_report(problems: Sequence[Problem], listed: int) -> None:
    """The problem table and the summary counts."""
    if problems:
        widths = [max(len(str(p[i])) for p in problems + [('video', 'subset', 'problem', '')]) for i in range(3)]
        print(f"{'video':<{widths[0]}}  {'subset':<{widths[1]}}  {'problem':<{widths[2]}}  detail")
        for vid, subset, problem, detail in problems:
            print(f'{vid:<{widths[0]}}  {subset:<{widths[1]}}  {problem:<{widths[2]}}  {detail}')
        print()
    counts = Counter(p[2] for p in problems)
    affected = len({(p[0], p[1]) for p in problems if p[2] not in HARMLESS | {NEAR_DUPLICATE}})
    summary = ', '.join(f'{n} {name}' for name, n in sorted(counts.items())) or 'no problems'
    print(f'{listed} videos listed; {affected} with problems that lose data; {summary}')


def loses_data(problems: Sequence[Problem]) -> bool:
    """Whether any problem calls for a fix: one that loses data, or a near duplicate across the split (everything
    but a loop-padded short video)."""
    return any(p[2] not in HARMLESS for p in problems)
