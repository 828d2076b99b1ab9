"""Video-level top-k accuracy of an inference result JSON against an annotation JSON.

    python -m util_scripts.eval_accuracy GT_JSON RESULT_JSON [-k K] [--subset validation]
        [--ignore] [--save] [--per_class_k 10]

Semantics of the original tool: the ground truth is every labelled entry of the subset in
the annotation JSON; a video is correct when its label is among the k best-scored labels of
its result list; accuracy = correct / number of ground-truth videos (with ``--ignore`` only
the videos present in the result file are counted; without it a missing video is wrong).
``--save`` writes ``top<k>.txt`` (the accuracy) next to the result file.

Beyond the original: ``val``/``train``/``test`` are accepted as subset names, a result file
written with ``--inference_no_average`` is read (per-segment scores averaged per label),
top-1/top-5 and the mean class accuracy are printed in the same run, and three reports are
written next to the result file: ``<stem>_per_class.tsv``, ``<stem>_confusion.tsv`` and
``<stem>_classes.png`` (the best and worst classes by top-1 accuracy). Unreadable input is a
one-line error with exit code 2. Only the standard library and Pillow are imported.
"""
import argparse
import io
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

from datasets.formats.atomic import atomic_write_bytes

PathLike = Union[str, os.PathLike]
Ranking = List[Tuple[str, float]]

SUBSET_ALIASES = {'validation': 'validation', 'val': 'validation',
                  'training': 'training', 'train': 'training',
                  'testing': 'testing', 'test': 'testing'}


class EvalError(Exception):
    """An input file cannot be used; the message is one line and names the file."""


class ClassAccuracy(NamedTuple):
    """Top-1/top-5 recall of one class over its ground-truth videos."""
    label: str
    n_videos: int
    top1: float
    top5: float


# ----------------------------------------------------------------------------- input

def canonical_subset(subset: str) -> str:
    """Map ``val``/``train``/``test`` (and the full names) to the annotation subset names."""
    return SUBSET_ALIASES.get(subset, subset)


def _read_json(path: PathLike) -> Any:
    path = Path(path)
    try:
        with path.open('r', encoding='utf-8') as f:
            return json.load(f)
    except FileNotFoundError:
        raise EvalError(f'{path}: no such file') from None
    except json.JSONDecodeError as e:
        raise EvalError(f'{path}: malformed JSON ({e})') from None
    except UnicodeDecodeError as e:
        raise EvalError(f'{path}: not UTF-8 text ({e.reason})') from None
    except OSError as e:
        raise EvalError(f'{path}: cannot read ({e.strerror or e})') from None


def _taxonomy_leaves(taxonomy: Any, path: Path) -> List[str]:
    if not isinstance(taxonomy, list) or not all(isinstance(n, dict) for n in taxonomy):
        raise EvalError(f'{path}: "taxonomy" must be a list of nodes')
    parents = {n.get('parentId') for n in taxonomy}
    return [str(n['nodeName']) for n in taxonomy
            if 'nodeName' in n and n.get('nodeId') not in parents]


def _entry_label(entry: Any) -> Optional[str]:
    annotations = entry.get('annotations') if isinstance(entry, dict) else None
    if isinstance(annotations, list):  # ActivityNet: a list of segments
        annotations = annotations[0] if annotations else None
    if not isinstance(annotations, dict):
        return None
    label = annotations.get('label')
    return None if label is None else str(label)


def load_ground_truth(path: PathLike, subset: str = 'validation'
                      ) -> Tuple[List[str], Dict[str, str]]:
    """Read an annotation JSON; return (class labels, {video_id: label}) for one subset."""
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get('database'), dict):
        raise EvalError(f'{path}: not an annotation JSON (no "database" object)')
    subset = canonical_subset(subset)
    ground_truth: Dict[str, str] = {}
    for video_id, entry in data['database'].items():
        if not isinstance(entry, dict) or canonical_subset(str(entry.get('subset'))) != subset:
            continue
        annotations = entry.get('annotations')
        if isinstance(annotations, dict) and isinstance(annotations.get('label'), list):
            raise EvalError(f'{path}: video {video_id!r} has a list of labels: for multi-label data '
                            'main.py --multilabel --inference reports mAP and top-k recall')
        label = _entry_label(entry)
        if label is not None:
            ground_truth[str(video_id)] = label
    if 'labels' in data:
        if not isinstance(data['labels'], list):
            raise EvalError(f'{path}: "labels" must be a list')
        labels = [str(x) for x in data['labels']]
    elif 'taxonomy' in data:
        labels = _taxonomy_leaves(data['taxonomy'], path)
    else:
        labels = []
    known = set(labels)
    labels += sorted({x for x in ground_truth.values() if x not in known})
    return labels, ground_truth


def _score(value: Any, path: Path, video_id: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EvalError(f'{path}: video {video_id!r}: score {value!r} is not a number')
    return float(value)


def _ranking(items: Any, path: Path, video_id: str) -> Ranking:
    if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
        raise EvalError(f'{path}: video {video_id!r}: expected a list of objects')
    if items and 'result' in items[0]:  # --inference_no_average: one list per segment
        totals: Dict[str, float] = {}
        for segment in items:
            seg_items = segment.get('result')
            if not isinstance(seg_items, list):
                raise EvalError(f'{path}: video {video_id!r}: segment without a "result" list')
            for label, score in _ranking(seg_items, path, video_id):
                totals[label] = totals.get(label, 0.0) + score
        pairs = [(label, total / len(items)) for label, total in totals.items()]
    else:
        pairs = []
        for item in items:
            if 'label' not in item or 'score' not in item:
                raise EvalError(f'{path}: video {video_id!r}: entry without "label"/"score"')
            pairs.append((str(item['label']), _score(item['score'], path, video_id)))
    # sorted() is stable: equal scores keep the file's order, as the original's sort did.
    return sorted(pairs, key=lambda p: p[1], reverse=True)


def load_results(path: PathLike) -> Dict[str, Ranking]:
    """Read a result JSON (averaged or per-segment); return {video_id: [(label, score)] desc}."""
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get('results'), dict):
        raise EvalError(f'{path}: not a result JSON (no "results" object)')
    return {str(vid): _ranking(items, path, str(vid)) for vid, items in data['results'].items()}


# ----------------------------------------------------------------------------- metrics

def _in_top_k(ranking: Ranking, label: str, k: int) -> bool:
    return any(pred == label for pred, _ in ranking[:k])


def evaluate(ground_truth: Dict[str, str], results: Dict[str, Ranking], k: int = 1,
             ignore: bool = False) -> Tuple[float, int, int]:
    """Top-k video accuracy; return (accuracy, correct, total), accuracy 0.0 when total is 0."""
    correct = total = 0
    for video_id, label in ground_truth.items():
        ranking = results.get(video_id)
        if ranking is None:
            if not ignore:
                total += 1
            continue
        total += 1
        correct += _in_top_k(ranking, label, k)
    return (correct / total if total else 0.0), correct, total


def per_class_accuracy(ground_truth: Dict[str, str], results: Dict[str, Ranking],
                       ignore: bool = False) -> List[ClassAccuracy]:
    """Per-class top-1/top-5 recall, classes with >= 1 counted video, by top1 desc then label."""
    counts: Dict[str, List[int]] = {}  # label -> [n_videos, top1 hits, top5 hits]
    for video_id, label in ground_truth.items():
        ranking = results.get(video_id)
        if ranking is None and ignore:
            continue
        c = counts.setdefault(label, [0, 0, 0])
        c[0] += 1
        if ranking is not None:
            c[1] += _in_top_k(ranking, label, 1)
            c[2] += _in_top_k(ranking, label, 5)
    rows = [ClassAccuracy(label, n, h1 / n, h5 / n) for label, (n, h1, h5) in counts.items()]
    return sorted(rows, key=lambda r: (-r.top1, r.label))


def mean_class_accuracy(per_class: Sequence[ClassAccuracy]) -> float:
    """Mean over classes of the per-class top-1 recall (0.0 when there is no class)."""
    return sum(r.top1 for r in per_class) / len(per_class) if per_class else 0.0


def confusion_matrix(ground_truth: Dict[str, str], results: Dict[str, Ranking],
                     labels: Optional[Sequence[str]] = None
                     ) -> Tuple[List[str], List[List[int]]]:
    """Square top-1 confusion counts: (labels, matrix[gt][pred]); videos without results skipped."""
    order = list(dict.fromkeys(labels or []))
    known = set(order)
    extra = set()
    for video_id, label in ground_truth.items():
        extra.add(label)
        ranking = results.get(video_id)
        if ranking:
            extra.add(ranking[0][0])
    order += sorted(extra - known)
    index = {label: i for i, label in enumerate(order)}
    matrix = [[0] * len(order) for _ in order]
    for video_id, label in ground_truth.items():
        ranking = results.get(video_id)
        if ranking:
            matrix[index[label]][index[ranking[0][0]]] += 1
    return order, matrix


# ----------------------------------------------------------------------------- output

def _tsv_cell(text: str) -> str:
    return text.replace('\t', ' ').replace('\n', ' ').replace('\r', ' ')


def per_class_tsv(per_class: Sequence[ClassAccuracy]) -> str:
    """The per-class table as TSV text (label, n_videos, top1, top5; 4 decimals)."""
    lines = ['label\tn_videos\ttop1\ttop5']
    lines += [f'{_tsv_cell(r.label)}\t{r.n_videos}\t{r.top1:.4f}\t{r.top5:.4f}'
              for r in per_class]
    return '\n'.join(lines) + '\n'


def confusion_tsv(labels: Sequence[str], matrix: Sequence[Sequence[int]]) -> str:
    """The confusion matrix as TSV text: header of predicted labels, one row per GT label."""
    lines = ['\t'.join(['gt\\pred'] + [_tsv_cell(x) for x in labels])]
    lines += ['\t'.join([_tsv_cell(label)] + [str(n) for n in row])
              for label, row in zip(labels, matrix)]
    return '\n'.join(lines) + '\n'


def _font(size: int) -> Any:
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # old Pillow or no FreeType: the bitmap font
        return ImageFont.load_default()


def _fit(text: str, font: Any, max_chars: int = 48) -> str:
    from PIL import ImageFont
    if len(text) > max_chars:
        text = text[:max_chars - 3] + '...'
    if not isinstance(font, ImageFont.FreeTypeFont):  # the bitmap font only has Latin-1
        text = text.encode('latin-1', 'replace').decode('latin-1')
    return text


def class_chart(per_class: Sequence[ClassAccuracy], title: str, k: int = 10) -> Any:
    """Horizontal bar chart (PIL Image) of the best and worst ``k`` classes by top-1 accuracy."""
    from PIL import Image, ImageDraw
    font, title_font = _font(14), _font(16)
    rows = list(per_class)
    if len(rows) <= 2 * k:
        sections = [(f'All {len(rows)} classes' if rows else 'No class to show', rows)]
    else:
        sections = [(f'Top {k} classes', rows[:k]), (f'Bottom {k} classes', rows[-k:])]
    colours = [(66, 121, 181), (214, 104, 56)]
    scratch = ImageDraw.Draw(Image.new('RGB', (1, 1)))

    def width(text: str, f: Any) -> float:
        return scratch.textlength(text, font=f)

    top, bottom = font.getbbox('Ag')[1], font.getbbox('Ag')[3]
    line_h = bottom - top
    row_h, bar_h, margin, bar_w = line_h + 8, line_h + 2, 16, 400
    names = [[_fit(r.label, font) for r in rs] for _, rs in sections]
    name_w = int(max([width(n, font) for ns in names for n in ns] + [60]))
    title = _fit(title, title_font, 120)
    x0 = margin + name_w + 10
    img_w = int(max(x0 + bar_w + 70 + margin, width(title, title_font) + 2 * margin))
    n_rows = sum(len(rs) for _, rs in sections)
    title_h = title_font.getbbox('Ag')[3] + 12
    header_h = row_h + 4
    img_h = margin + title_h + len(sections) * header_h + n_rows * row_h + 8 + 2 * row_h + margin
    img = Image.new('RGB', (img_w, img_h), 'white')
    draw = ImageDraw.Draw(img)
    draw.text((margin, margin), title, font=title_font, fill=(20, 20, 20))
    plot_top = margin + title_h
    plot_bottom = img_h - margin - 2 * row_h - 4
    for i in range(5):  # gridlines at 0, 0.25, ..., 1.0 and their tick labels
        x = x0 + round(bar_w * i / 4)
        draw.line([(x, plot_top), (x, plot_bottom)],
                  fill=(120, 120, 120) if i == 0 else (225, 225, 225), width=1)
        tick = f'{i / 4:.2f}'
        draw.text((x - width(tick, font) / 2, plot_bottom + 4 - top), tick, font=font,
                  fill=(90, 90, 90))
    caption = 'top-1 accuracy (fraction of the class videos)'
    draw.text((x0 + (bar_w - width(caption, font)) / 2, plot_bottom + 4 + row_h - top), caption,
              font=font, fill=(90, 90, 90))
    y = plot_top
    for s, ((header, rs), ns) in enumerate(zip(sections, names)):
        draw.text((margin, y + (row_h - line_h) / 2 - top), header, font=font,
                  fill=(20, 20, 20))
        y += header_h
        for r, name in zip(rs, ns):
            text_y = y + (row_h - line_h) / 2 - top
            draw.text((x0 - 10 - width(name, font), text_y), name, font=font,
                      fill=(30, 30, 30))
            length = round(bar_w * min(max(r.top1, 0.0), 1.0))
            bar_y = y + (row_h - bar_h) / 2
            if length > 0:
                draw.rectangle([x0, bar_y, x0 + length, bar_y + bar_h],
                               fill=colours[s % len(colours)])
            draw.text((x0 + length + 5, text_y), f'{r.top1:.3f}', font=font, fill=(30, 30, 30))
            y += row_h
    return img


def report_paths(result_path: PathLike) -> Dict[str, Path]:
    """Where write_reports puts its files: {'per_class', 'confusion', 'classes'} -> path."""
    result_path = Path(result_path)
    stem, folder = result_path.stem, result_path.parent
    return {'per_class': folder / f'{stem}_per_class.tsv',
            'confusion': folder / f'{stem}_confusion.tsv',
            'classes': folder / f'{stem}_classes.png'}


def write_reports(result_path: PathLike, ground_truth: Dict[str, str],
                  results: Dict[str, Ranking], labels: Optional[Sequence[str]] = None,
                  ignore: bool = False, per_class_k: int = 10,
                  title: Optional[str] = None) -> Dict[str, Path]:
    """Write the per-class TSV, confusion TSV and class bar chart next to the result file."""
    paths = report_paths(result_path)
    per_class = per_class_accuracy(ground_truth, results, ignore)
    if title is None:
        acc, correct, total = evaluate(ground_truth, results, 1, ignore)
        title = (f'{Path(result_path).name}: top-1 {acc:.4f} ({correct}/{total}), '
                 f'mean class {mean_class_accuracy(per_class):.4f}')
    atomic_write_bytes(paths['per_class'], per_class_tsv(per_class).encode('utf-8'))
    order, matrix = confusion_matrix(ground_truth, results, labels)
    atomic_write_bytes(paths['confusion'], confusion_tsv(order, matrix).encode('utf-8'))
    buf = io.BytesIO()
    class_chart(per_class, title, per_class_k).save(buf, format='PNG')
    atomic_write_bytes(paths['classes'], buf.getvalue())
    return paths


# ----------------------------------------------------------------------------- CLI

def evaluate_files(ground_truth_path: PathLike, result_path: PathLike,
                   subset: str = 'validation', k: int = 1, ignore: bool = False,
                   save: bool = False, per_class_k: int = 10,
                   log: Callable[[str], None] = print) -> Dict[str, float]:
    """Evaluate one result file, log the summary, write the reports; return the metrics."""
    ground_truth_path, result_path = Path(ground_truth_path), Path(result_path)
    labels, ground_truth = load_ground_truth(ground_truth_path, subset)
    if not ground_truth:
        raise EvalError(f'{ground_truth_path}: no labelled video in subset '
                        f'"{canonical_subset(subset)}"')
    results = load_results(result_path)
    missing = sum(1 for v in ground_truth if v not in results)
    if ignore and missing == len(ground_truth):
        raise EvalError(f'{result_path}: none of the {len(ground_truth)} videos of subset '
                        f'"{canonical_subset(subset)}" has a result')
    metrics: Dict[str, float] = {}
    for kk in dict.fromkeys([k, 1, 5]):
        acc, correct, total = evaluate(ground_truth, results, kk, ignore)
        metrics[f'top{kk}'] = acc
        log(f'top-{kk} accuracy: {acc:.4f} ({correct}/{total})')
    per_class = per_class_accuracy(ground_truth, results, ignore)
    metrics['mean_class'] = mean_class_accuracy(per_class)
    log(f'mean class accuracy: {metrics["mean_class"]:.4f} ({len(per_class)} classes)')
    if missing:
        how = 'not counted (--ignore)' if ignore else 'counted as wrong'
        log(f'note: {missing} of {len(ground_truth)} ground-truth videos have no result; {how}')
    title = (f'{ground_truth_path.stem} {canonical_subset(subset)} / {result_path.name}: '
             f'top-1 {metrics["top1"]:.4f}, mean class {metrics["mean_class"]:.4f}')
    try:
        if save:
            top_path = result_path.parent / f'top{k}.txt'
            atomic_write_bytes(top_path, str(metrics[f'top{k}']).encode('utf-8'))
        paths = write_reports(result_path, ground_truth, results, labels, ignore,
                              per_class_k, title)
    except OSError as e:
        raise EvalError(f'{result_path.parent}: cannot write reports ({e.strerror or e})') \
            from None
    log('reports: ' + ', '.join(str(p) for p in paths.values()))
    return metrics


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'not an integer: {text!r}') from None
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be >= 1: {value}')
    return value


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point; returns the exit code (2 for unusable input)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('ground_truth_path', type=Path, help='Annotation JSON')
    parser.add_argument('result_path', type=Path, help='Result JSON written by inference')
    parser.add_argument('-k', type=_positive_int, default=1, help='top-k (default 1)')
    parser.add_argument('--subset', default='validation', choices=sorted(SUBSET_ALIASES),
                        help='Subset of the annotation JSON (default validation)')
    parser.add_argument('--ignore', action='store_true',
                        help='Count only ground-truth videos present in the result file')
    parser.add_argument('--save', action='store_true',
                        help='Write top<k>.txt with the accuracy next to the result file')
    parser.add_argument('--per_class_k', type=_positive_int, default=10,
                        help='Classes shown at each end of the bar chart (default 10)')
    args = parser.parse_args(argv)
    try:
        evaluate_files(args.ground_truth_path, args.result_path, args.subset, args.k,
                       args.ignore, args.save, args.per_class_k)
    except EvalError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
