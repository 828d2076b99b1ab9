"""A video's clip scores (or features) in one order, whatever order and whichever processes they came from.

Inference scores every clip of a video, possibly on several ranks (ActivityNet entries are segments
of one video); the mean over its clips, the results JSON and the feature files are taken in the
order ``canonical_clips`` gives, so one process and N processes write the same. No torch: the
scores are only sorted and regrouped here.
"""
from typing import Any, Dict, Iterable, List, Tuple

Clip = Tuple[Tuple[int, int], Any]  # (segment, scores or features: a tensor)
ClipScores = Dict[str, List[Clip]]  # video id -> its clips


def canonical_clips(clips: List[Clip]) -> List[Clip]:
    """One video's (segment, scores) pairs in one order whatever order they came in: by segment, then by value."""
    if len({tuple(segment) for segment, _ in clips}) == len(clips):
        return sorted(clips, key=lambda c: tuple(c[0]))
    return sorted(clips, key=lambda c: (tuple(c[0]), c[1].flatten().tolist()))  # repeated segments: by their values


def merge_clips(parts: Iterable[ClipScores]) -> ClipScores:
    """Every video's clips over ``parts`` (ranks' ClipScores or ClipFeatures); videos in id order, clips canonical."""
    merged: ClipScores = {}
    for part in parts:
        for vid, clips in part.items():
            merged.setdefault(vid, []).extend(clips)
    return {vid: canonical_clips(merged[vid]) for vid in sorted(merged)}
