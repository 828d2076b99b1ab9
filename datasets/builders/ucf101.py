"""UCF-101 annotation JSONs, one per official split (``python -m util_scripts.ucf101_json`` runs it)."""
from pathlib import Path
from typing import List

from datasets.formats.annotation_build import DiskCache, build_annotation_file
from datasets.formats.annotation_json import AnnotationError, Row
from datasets.formats.text_inputs import read_lines, require_dir, require_file


def read_class_index(path: Path) -> List[str]:
    """Class names of classInd.txt in file order."""
    labels = []
    for i, line in enumerate(read_lines(path), 1):
        parts = line.split()
        if len(parts) != 2:
            raise AnnotationError(f'{path}: line {i}: expected "index name", got {line!r}')
        labels.append(parts[1])
    return labels


def read_split_list(path: Path, subset: str) -> List[Row]:
    """(video_id, subset, label) rows of a trainlist/testlist file."""
    rows = []
    for i, line in enumerate(read_lines(path), 1):
        parts = line.split()[0].replace('\\', '/').split('/')
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise AnnotationError(f'{path}: line {i}: expected "Class/video.avi", got {line!r}')
        label, name = parts
        rows.append((name.split('.')[0], subset, label))
    return rows


def build(ann_dir: Path, video_root: Path, dst_dir: Path, file_type: str = 'jpg') -> None:
    """Write ``dst_dir/ucf101_0{1,2,3}.json``, one per split whose two list files exist in ``ann_dir``."""
    labels = read_class_index(require_file(ann_dir / 'classInd.txt', 'class index'))
    require_dir(video_root, 'video root')
    cache = DiskCache()
    written = 0
    for k in (1, 2, 3):
        lists = [ann_dir / f'{kind}list0{k}.txt' for kind in ('train', 'test')]
        absent = [p.name for p in lists if not p.is_file()]
        if absent:
            print(f'note: split {k} skipped: {" and ".join(absent)} not found in {ann_dir}')
            continue
        rows = read_split_list(lists[0], 'training') + read_split_list(lists[1], 'validation')
        build_annotation_file(dst_dir / f'ucf101_0{k}.json', labels, rows,
                              video_root, file_type, cache)
        written += 1
    if not written:
        raise AnnotationError(f'no split files (trainlist0k.txt and testlist0k.txt) in '
                              f'{ann_dir}')
