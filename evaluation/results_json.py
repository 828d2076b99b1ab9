"""The inference results JSON: ``{"results": {video_id: ranking}}``, read into sorted rankings.

A ranking is ``[{"label": name, "score": s}, ...]``, or with ``--inference_no_average`` one
``{"segment": [begin, end], "result": ranking}`` per clip, whose scores are averaged per
label on reading. Standard library only.
"""
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple, Union

from common.atomic import atomic_write_json
from common.errors import UserError, read_text

PathLike = Union[str, os.PathLike]
Ranking = List[Tuple[str, float]]  # (label, score), best first


class ResultsError(UserError):
    """A result file cannot be used; the message is one line and names the file."""


def read_json(path: PathLike) -> Any:
    """The JSON of a file, or a one-line ResultsError naming it."""
    text = read_text(path, ResultsError, 'result file')
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ResultsError(f'{path}: malformed JSON ({e})') from None


def _score(value: Any, path: Path, video_id: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ResultsError(f'{path}: video {video_id!r}: score {value!r} is not a number')
    return float(value)


def _ranking(items: Any, path: Path, video_id: str) -> Ranking:
    if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
        raise ResultsError(f'{path}: video {video_id!r}: expected a list of objects')
    if items and 'result' in items[0]:  # --inference_no_average: one list per segment
        totals: Dict[str, float] = {}
        for segment in items:
            seg_items = segment.get('result')
            if not isinstance(seg_items, list):
                raise ResultsError(f'{path}: video {video_id!r}: segment without a "result" list')
            for label, score in _ranking(seg_items, path, video_id):
                totals[label] = totals.get(label, 0.0) + score
        pairs = [(label, total / len(items)) for label, total in totals.items()]
    else:
        pairs = []
        for item in items:
            if 'label' not in item or 'score' not in item:
                raise ResultsError(f'{path}: video {video_id!r}: entry without "label"/"score"')
            pairs.append((str(item['label']), _score(item['score'], path, video_id)))
    # sorted() is stable: equal scores keep the file's order, as the original's sort did.
    return sorted(pairs, key=lambda p: p[1], reverse=True)


def load_results(path: PathLike) -> Dict[str, Ranking]:
    """Read a result JSON (averaged or per-segment); return {video_id: [(label, score)] desc}."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get('results'), dict):
        raise ResultsError(f'{path}: not a result JSON (no "results" object)')
    return {str(vid): _ranking(items, path, str(vid)) for vid, items in data['results'].items()}


def write_results(path: PathLike, rankings: Dict[str, Sequence[Tuple[str, float]]]) -> Path:
    """Write averaged rankings as a result JSON, atomically; returns the path."""
    return atomic_write_json(path, {'results': {
        vid: [{'label': label, 'score': score} for label, score in ranking]
        for vid, ranking in rankings.items()}})
