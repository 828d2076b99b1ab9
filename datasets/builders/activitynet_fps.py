"""Add each video's fps and frame count to the ActivityNet annotation JSON (``python -m util_scripts.add_fps_into_activitynet_json`` runs it)."""
import argparse
from pathlib import Path
from typing import Any, Dict, List

from datasets.formats.annotation_build import preview, progress, subset_counts
from datasets.formats.annotation_json import read_annotation_json, write_annotation_json
from datasets.formats.text_inputs import require_dir
from datasets.formats.video_files import probe_video, video_fps
from datasets.formats.video_layout import count_jpg_frames, list_class_folder, unreadable_errors


def add_fps(data: Dict[str, Any], video_dir: Path) -> Dict[str, List[str]]:
    """Set ``fps`` and ``n_frames`` in place; return the ids not found / without fps / broken."""
    videos = list_class_folder(video_dir, 'video')
    broken = unreadable_errors()
    found: Dict[str, List[str]] = {'not_found': [], 'no_fps': [], 'unreadable': [],
                                   'from_frames': [], 'from_video': []}
    for video_id, entry in progress(list(data['database'].items()), total=len(data['database']),
                                    desc='probing videos', unit='videos'):
        video = videos.get(f'v_{video_id}')
        frames = video_dir / f'v_{video_id}'
        frames = frames if frames.is_dir() else None
        if video is None and frames is None:
            found['not_found'].append(video_id)
            continue
        try:
            if frames is not None:
                fps = video_fps(video) if video is not None else None
                n_frames = count_jpg_frames(frames)
            else:
                n_frames, fps = probe_video(video)
        except broken:
            found['unreadable'].append(video_id)
            continue
        if fps is None:
            found['no_fps'].append(video_id)
        else:
            entry['fps'] = fps
        entry['n_frames'] = n_frames
        found['from_frames' if frames is not None else 'from_video'].append(video_id)
    return found


def build(args: argparse.Namespace) -> None:
    """Add fps and n_frames to the JSON, write it and print what was found."""
    data = read_annotation_json(args.json_path)
    require_dir(args.video_dir, 'video folder')
    found = add_fps(data, args.video_dir)
    dst = write_annotation_json(args.dst_json or args.json_path, data)
    n_written = len(found['from_frames']) + len(found['from_video'])
    print('\n'.join([
        f'{dst}:',
        f'  entries: {subset_counts(data["database"])}',
        f'  fps and n_frames written: {n_written} (n_frames from frame folders '
        f'{len(found["from_frames"])}, from video packets {len(found["from_video"])})',
        f'  not found in {args.video_dir}: {preview(found["not_found"])}',
        f'  no fps (frame folder without a video, or no rate in it): {preview(found["no_fps"])}',
        f'  unreadable: {preview(found["unreadable"])}',
    ]))
