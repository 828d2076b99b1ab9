"""Reports of one result file beside it: the per-class TSV, the confusion TSV and a class chart PNG.

``<stem>_per_class.tsv`` (label, videos, top-1 and top-5 recall), ``<stem>_confusion.tsv``
(ground truth by predicted label) and ``<stem>_classes.png`` (the best and worst classes by
top-1 accuracy), all written atomically. Standard library and Pillow.

A label may hold any character. In the TSV files a cell is escaped reversibly
(:func:`tsv_escape`, undone by :func:`tsv_unescape`): a backslash is written ``\\\\``, a tab
``\\t``, a newline ``\\n``, a carriage return ``\\r``, and any other control character, line
or paragraph separator or lone surrogate ``\\xHH``, ``\\uHHHH`` or ``\\UHHHHHHHH``; every
other character, non-ASCII included, is written as itself in UTF-8. The chart shows
unprintable characters the same way (``a\\nb``), a blank label quoted (``' '``) and cuts long
labels with ``...``.
"""
import io
import os
import re
import unicodedata
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

from common.atomic import atomic_write_bytes
from evaluation.metrics import ClassAccuracy, confusion_matrix, mean_class_accuracy, per_class_accuracy, top_k_accuracy
from evaluation.results_json import Ranking

PathLike = Union[str, os.PathLike]


_ESCAPES = {'\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r'}
_UNESCAPES = {code[1]: char for char, code in _ESCAPES.items()}
_ESCAPED = re.compile(r'\\(?:([\\tnr])|x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8}))')
_BREAKING = ('Cc', 'Cs', 'Zl', 'Zp')  # control, lone surrogate, line and paragraph separators


def _code(char: str) -> str:
    n = ord(char)
    return f'\\x{n:02x}' if n < 0x100 else f'\\u{n:04x}' if n < 0x10000 else f'\\U{n:08x}'


def tsv_escape(text: str) -> str:
    """``text`` as one TSV cell, escaped reversibly as the module docstring says."""
    return ''.join(_ESCAPES.get(c) or (_code(c) if unicodedata.category(c) in _BREAKING else c)
                   for c in text)


def tsv_unescape(cell: str) -> str:
    """The text ``tsv_escape`` wrote as ``cell`` (a backslash that starts no escape stays as it is)."""
    def char(m: 're.Match[str]') -> str:
        code = int(m[2] or m[3] or m[4] or '0', 16)
        return _UNESCAPES[m[1]] if m[1] else chr(code) if code <= 0x10FFFF else m[0]
    return _ESCAPED.sub(char, cell)


def shown_text(text: str) -> str:
    """``text`` for drawing: unprintable characters as their escapes (``\\n``, ``\\x00``), the rest as is."""
    return ''.join(c if c.isprintable() else _ESCAPES.get(c) or _code(c) for c in text)


def per_class_tsv(per_class: Sequence[ClassAccuracy], n_classes: Optional[int] = None) -> str:
    """The per-class table as TSV text (label, n_videos, top1, top5; 4 decimals).

    With ``n_classes`` of 5 or fewer, top-5 is always 1 and is written ``n/a``.
    """
    top5_na = n_classes is not None and n_classes <= 5
    lines = ['label\tn_videos\ttop1\ttop5']
    lines += [f'{tsv_escape(r.label)}\t{r.n_videos}\t{r.top1:.4f}\t' + ('n/a' if top5_na else f'{r.top5:.4f}')
              for r in per_class]
    return '\n'.join(lines) + '\n'


def confusion_tsv(labels: Sequence[str], matrix: Sequence[Sequence[int]]) -> str:
    """The confusion matrix as TSV text: header of predicted labels, one row per GT label."""
    lines = ['\t'.join(['gt\\pred'] + [tsv_escape(x) for x in labels])]
    lines += ['\t'.join([tsv_escape(label)] + [str(n) for n in row])
              for label, row in zip(labels, matrix)]
    return '\n'.join(lines) + '\n'


def _font(size: int) -> Any:
    from PIL import ImageFont
    try:  # DejaVu Sans, where the system has it, draws far more of Unicode than the default
        return ImageFont.truetype('DejaVuSans.ttf', size)
    except OSError:
        pass
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # old Pillow or no FreeType: the bitmap font
        return ImageFont.load_default()


def _fit(text: str, font: Any, max_chars: int = 48) -> str:
    from PIL import ImageFont
    text = shown_text(text) if text.strip() else repr(text)  # a blank label is shown quoted
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
        acc, correct, total = top_k_accuracy(ground_truth, results, 1, ignore)
        title = (f'{Path(result_path).name}: top-1 {acc:.4f} ({correct}/{total}), '
                 f'mean class {mean_class_accuracy(per_class):.4f}')
    atomic_write_bytes(paths['per_class'], per_class_tsv(per_class, len(labels) if labels else None).encode('utf-8'))
    order, matrix = confusion_matrix(ground_truth, results, labels)
    atomic_write_bytes(paths['confusion'], confusion_tsv(order, matrix).encode('utf-8'))
    buf = io.BytesIO()
    class_chart(per_class, title, per_class_k).save(buf, format='PNG')
    atomic_write_bytes(paths['classes'], buf.getvalue())
    return paths
