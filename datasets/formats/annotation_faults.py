"""What an annotation file's entries get wrong, named so that nothing is dropped without a word.

An entry is left out of every subset, and reported by id, when its ``subset`` is not a known
name (``training``/``validation``/``testing``; ``train``/``val``/``test`` are accepted as
their aliases, as ``evaluation`` accepts them), when a key the loader reads is misspelled
(``annotation`` for ``annotations``, ``subsets``, ``lable``...), when its label is not in the
file's ``labels``, or when it is not a JSON object. ``wrong_frame_base`` recognises a file
built for another ``--file_type`` (jpg segments start at frame 1, hdf5 and video ones at 0).
Standard library only.
"""
import collections
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Dict, Iterable, List, Optional, Sequence, Tuple

from datasets.formats.annotation_json import SUBSET_ALIASES, SUBSETS, entry_labels, first_ids, segment_for
from datasets.formats.video_layout import count_frames, unreadable_errors

# the keys the loader reads (a misspelling of one loses the entry) and others the formats hold
ENTRY_KEYS = ('subset', 'annotations', 'segment', 'video_path')
ANNOTATION_KEYS = ('label', 'segment', 'video_path')
OTHER_KEYS = ('duration', 'resolution', 'url', 'fps', 'n_frames')  # ActivityNet's
_ENTRY, _ANNOTATION = frozenset(ENTRY_KEYS + OTHER_KEYS), frozenset(ANNOTATION_KEYS)
NO_SUBSET = '-'  # the subset column of an entry without a usable one


@dataclass(frozen=True)
class Fault:
    """One entry left out: its id, its subset as written, the problem and its detail."""
    video_id: str
    subset: str
    problem: str
    detail: str


def misspelled(keys: Iterable[str], wanted: Sequence[str], known: Sequence[str] = ()) -> List[Tuple[str, str]]:
    """(key, the wanted key it misspells) for keys close to a wanted key that is absent."""
    keys = [str(k) for k in keys]
    if all(key in wanted or key in known for key in keys):
        return []
    out = []
    for key in keys:
        if key in wanted or key in known:
            continue
        close = difflib.get_close_matches(key.lower(), wanted, n=1, cutoff=0.75)
        if close and close[0] not in keys:
            out.append((key, close[0]))
    return out


def _annotation_dicts(entry: Dict[str, Any]) -> List[Dict[str, Any]]:
    annotations = entry.get('annotations')
    if isinstance(annotations, dict):
        return [annotations]
    if isinstance(annotations, list):
        return [a for a in annotations if isinstance(a, dict)]
    return []


def file_subset(entry: Any) -> Optional[str]:
    """The entry's canonical subset, or None when it has no known one."""
    subset = entry.get('subset') if isinstance(entry, dict) else None
    return SUBSET_ALIASES.get(subset) if isinstance(subset, str) else None


def _plainly_fine(entry: Any, labels: Collection[str]) -> bool:
    """The common case, checked fast: known keys, a known subset, one label that is in ``labels``."""
    annotations = entry.get('annotations') if type(entry) is dict else None
    if type(annotations) is not dict:
        return False
    label = annotations.get('label')
    return (type(entry.get('subset')) is str and entry['subset'] in SUBSET_ALIASES and _ENTRY.issuperset(entry)
            and _ANNOTATION.issuperset(annotations) and (label is None or type(label) is str and label in labels))


def entry_faults(video_id: str, entry: Any, labels: Collection[str]) -> List[Fault]:
    """Everything that keeps one entry out of the dataset ([] for a usable entry); ``labels``: a set, for speed."""
    if _plainly_fine(entry, labels):
        return []
    if not isinstance(entry, dict):
        return [Fault(video_id, NO_SUBSET, 'not an object', f'a JSON {type(entry).__name__}')]
    written = entry.get('subset')
    subset = str(written) if file_subset(entry) else NO_SUBSET
    found = [Fault(video_id, subset, 'misspelled key', f"'{key}' for '{meant}'")
             for key, meant in misspelled(entry, ENTRY_KEYS, OTHER_KEYS)]
    for annotation in _annotation_dicts(entry):
        found += [Fault(video_id, subset, 'misspelled key', f"'{key}' for '{meant}'")
                  for key, meant in misspelled(annotation, ANNOTATION_KEYS)]
    if file_subset(entry) is None and not any(f.detail.endswith("for 'subset'") for f in found):
        shown = 'none' if written is None else repr(written)
        found.append(Fault(video_id, str(written) if written is not None else NO_SUBSET, 'unknown subset',
                           f"{shown} is none of {', '.join(SUBSETS)}"))
    known = labels
    names = entry_labels(entry)[0] + [str(a['label']) for a in _annotation_dicts(entry)[1:]
                                      if isinstance(a.get('label'), (str, int))]
    found += [Fault(video_id, subset, "label not in 'labels'", repr(name))
              for name in dict.fromkeys(names) if name not in known]
    return found


def summarize(faults: Sequence[Fault]) -> List[str]:
    """One phrase per (problem, detail): ``3 dropped (unknown subset: 'trainig' is none of ...): a, b, c``."""
    groups: Dict[Tuple[str, str], List[str]] = collections.OrderedDict()
    for fault in faults:
        groups.setdefault((fault.problem, fault.detail), []).append(fault.video_id)
    return [f'{len(ids)} dropped ({problem}: {detail}): {first_ids(ids)}' for (problem, detail), ids in groups.items()]


def subset_key(entry: Any) -> str:
    """An entry's subset as written, for counting (``no subset`` when it has none)."""
    subset = entry.get('subset') if isinstance(entry, dict) else None
    return 'no subset' if subset is None else str(subset)


def ordered_counts(counts: Dict[str, int]) -> Dict[str, int]:
    """Subset counts (from ``subset_key``) most first, ``no subset`` last."""
    return dict(sorted(counts.items(), key=lambda kv: (kv[0] == 'no subset', -kv[1], kv[0])))


def wrong_frame_base(records: Sequence[Tuple[str, Path, range]], file_type: str) -> Optional[str]:
    """Why segments were built for another file type (None: they fit ``file_type``).

    Recognised when every segment starts at the other types' first frame and one video
    confirms it: an hdf5 or video file with fewer frames than the segment's end, or a jpg
    folder without ``image_00000.jpg``.
    """
    first = segment_for(0, file_type)[0]
    wrong = 1 - first  # 1 for hdf5/video, 0 for jpg
    if not records or any(frames.start != wrong for _, _, frames in records):
        return None
    for video_id, path, frames in records[:3]:
        if file_type == 'jpg':
            if path.is_dir() and not (path / 'image_00000.jpg').exists():
                return (f'built for --file_type hdf5 or video: every segment starts at frame 0, '
                        f'which jpg folders do not have ({video_id} has no image_00000.jpg)')
            continue
        try:
            n = count_frames(path, file_type)
        except unreadable_errors():
            continue
        if frames.stop > n:
            return (f'built for --file_type jpg: every segment starts at frame 1, and '
                    f'{video_id}\'s [{frames.start}, {frames.stop}] runs past its {n} frames')
    return None
