"""Training curves from a run's logs: ``curves.png`` beside ``train.log`` and ``val.log``.

Four panels per epoch, training in blue and validation in orange: loss, clip accuracy,
video top-1 (video mAP for a multi-label run) and the learning rate (on a log scale when it
falls by a factor of 5 or more). ``write_curves`` redraws the file from the logs, atomically.
"""
import io
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from PIL import Image, ImageDraw

from common.atomic import atomic_write_bytes
from evaluation.reports import _font
from visuals.overlay import fit_width

Series = List[Tuple[int, float]]  # (epoch, value)
PANEL_W, PANEL_H, MARGIN, TITLE_H = 460, 290, 12, 30
PLOT = (70, 34, 18, 40)  # left, top, right, bottom space of a panel around its plot
TRAIN, VAL = (50, 110, 180), (225, 110, 40)


def read_log(path: Path) -> Dict[str, Series]:
    """Column -> [(epoch, value)] of a TSV log; cells that are no finite number (``n/a``) are left out.

    Only whole lines count: what follows the last newline is a row still being written.
    """
    if not path.is_file():
        return {}
    lines = path.read_text(encoding='utf-8', errors='replace').split('\n')[:-1]
    if not lines:
        return {}
    header, series = lines[0].split('\t'), {}
    for line in lines[1:]:
        cells = line.split('\t')
        try:
            epoch = int(cells[0])
        except ValueError:
            continue
        for name, cell in zip(header[1:], cells[1:]):
            try:
                value = float(cell)
            except ValueError:
                continue
            if math.isfinite(value):
                series.setdefault(name, []).append((epoch, value))
    return series


def panels(train: Dict[str, Series], val: Dict[str, Series]) -> List[Tuple[str, Series, Series]]:
    """(title, training series, validation series) of the four panels."""
    video = ('video top-1', 'video_top1') if 'video_top1' in val or 'mAP' not in val else ('video mAP', 'mAP')
    return [('loss', train.get('loss', []), val.get('loss', [])),
            ('clip accuracy', train.get('acc', []), val.get('acc', [])),
            (video[0], [], val.get(video[1], [])),
            ('learning rate', train.get('lr', []), [])]


def _nice_step(span: float) -> float:
    """1, 2, 2.5 or 5 times a power of ten: at least a quarter of ``span``."""
    raw = span / 4
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)


def _ticks(lo: float, hi: float, log: bool) -> List[float]:
    if log:
        return [10.0 ** e for e in range(round(math.log10(lo)), round(math.log10(hi)) + 1)]
    step = _nice_step(hi - lo)
    return [step * k for k in range(math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9) + 1)]


def _range(values: Sequence[float], title: str) -> Tuple[float, float, bool]:
    lo, hi = min(values), max(values)
    if 'accuracy' in title or 'top-1' in title or 'mAP' in title:
        return 0.0, 1.0, False
    if title == 'learning rate' and lo > 0 and hi / lo >= 5:
        return 10.0 ** math.floor(math.log10(lo)), 10.0 ** math.ceil(math.log10(hi)), True
    pad = (hi - lo) * 0.05 or abs(hi) * 0.1 or 1.0
    step = _nice_step(hi - lo + 2 * pad)
    lo = 0.0 if 0 <= lo < step else math.floor((lo - pad) / step) * step
    return lo, math.ceil((hi + pad) / step) * step, False


def _panel(draw: ImageDraw.ImageDraw, x0: int, y0: int, title: str, train: Series, val: Series,
           epochs: Tuple[int, int]) -> None:
    font, small = _font(14), _font(11)
    left, top = x0 + PLOT[0], y0 + PLOT[1]
    right, bottom = x0 + PANEL_W - PLOT[2], y0 + PANEL_H - PLOT[3]
    draw.rectangle([x0, y0, x0 + PANEL_W - 1, y0 + PANEL_H - 1], outline=(210, 210, 210))
    draw.text((x0 + 10, y0 + 8), title, font=font, fill=(20, 20, 20))
    for i, (name, series, colour) in enumerate((('train', train, TRAIN), ('val', val, VAL))):
        if series:
            lx = right - 110 + 60 * i
            draw.line([(lx, y0 + 17), (lx + 16, y0 + 17)], fill=colour, width=3)
            draw.text((lx + 20, y0 + 10), name, font=small, fill=(60, 60, 60))
    values = [v for _, v in train + val]
    if not values:
        draw.text((left + 10, top + 10), 'no values logged', font=small, fill=(120, 120, 120))
        return
    e_lo, e_hi = (epochs[0] - 1, epochs[1] + 1) if epochs[0] == epochs[1] else epochs
    v_lo, v_hi, log = _range(values, title)
    scale = (lambda v: math.log10(max(v, 1e-30))) if log else (lambda v: v)

    def at(epoch: float, value: float) -> Tuple[float, float]:
        fy = (scale(value) - scale(v_lo)) / ((scale(v_hi) - scale(v_lo)) or 1)
        return left + (right - left) * (epoch - e_lo) / (e_hi - e_lo), bottom - (bottom - top) * fy

    for tick in _ticks(v_lo, v_hi, log):
        y = at(e_lo, tick)[1]
        draw.line([(left, y), (right, y)], fill=(232, 232, 232))
        text = f'{tick:.3g}'
        draw.text((left - 6 - draw.textlength(text, font=small), y - 7), text, font=small, fill=(90, 90, 90))
    step = max(1, math.ceil((e_hi - e_lo) / 8))
    for epoch in range(math.ceil(e_lo), int(e_hi) + 1, step):
        x = at(epoch, v_lo)[0]
        draw.line([(x, bottom), (x, bottom + 4)], fill=(120, 120, 120))
        draw.text((x - draw.textlength(str(epoch), font=small) / 2, bottom + 6), str(epoch), font=small,
                  fill=(90, 90, 90))
    draw.text(((left + right) / 2 - 16, bottom + 22), 'epoch', font=small, fill=(90, 90, 90))
    draw.rectangle([left, top, right, bottom], outline=(150, 150, 150))
    for series, colour in ((train, TRAIN), (val, VAL)):
        points = [at(e, v) for e, v in sorted(series)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for x, y in points:
            draw.ellipse([x - 2.5, y - 2.5, x + 2.5, y + 2.5], fill=colour)


def curves_image(train: Dict[str, Series], val: Dict[str, Series], title: str) -> Image.Image:
    """The four panels in a 2 x 2 grid under ``title`` (PIL Image)."""
    width, height = 2 * PANEL_W + 3 * MARGIN, TITLE_H + 2 * PANEL_H + 3 * MARGIN
    image = Image.new('RGB', (width, height), 'white')
    draw = ImageDraw.Draw(image)
    draw.text((MARGIN, MARGIN), fit_width(title, _font(16), width - 2 * MARGIN), font=_font(16), fill=(20, 20, 20))
    epochs = [e for series in (*train.values(), *val.values()) for e, _ in series] or [1]
    for i, (name, t, v) in enumerate(panels(train, val)):
        _panel(draw, MARGIN + (i % 2) * (PANEL_W + MARGIN), TITLE_H + MARGIN + (i // 2) * (PANEL_H + MARGIN),
               name, t, v, (min(epochs), max(epochs)))
    return image


def write_curves(result_path: Path) -> Optional[Path]:
    """Redraw ``curves.png`` in ``result_path`` from its ``train.log`` and ``val.log``; None if they hold no row."""
    train, val = read_log(result_path / 'train.log'), read_log(result_path / 'val.log')
    if not train and not val:
        return None
    last = max(e for series in (*train.values(), *val.values()) for e, _ in series)
    buf = io.BytesIO()
    curves_image(train, val, f'{result_path.name}: training curves to epoch {last}').save(buf, format='PNG')
    return atomic_write_bytes(result_path / 'curves.png', buf.getvalue())
