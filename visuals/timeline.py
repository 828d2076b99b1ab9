"""A video's timeline as a picture: ``<stem>.timeline.png`` beside ``<stem>.timeline.json``.

The top panel draws the scores of the classes that matter over time, one coloured line each (the
segments' labels by the time they cover, then the best mean scores; six at most), each pixel
column the mean of the windows that fall in it, so an hour of 2-second windows stays a line.
Below it a band shows the segments in their label's colour (grey for a label without a line),
named where the name fits; the legend under it names the colours. Drawn with PIL, atomically.
"""
import io
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

from common.atomic import atomic_write_bytes
from evaluation.reports import _font
from visuals.overlay import fit_width

WIDTH, PLOT_H, BAND_H, MARGIN, LEFT = 1600, 300, 34, 14, 56
COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]
OTHER = (170, 170, 170)
TICKS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400]


def clock(seconds: float) -> str:
    """Seconds as m:ss, or h:mm:ss from an hour on."""
    s = int(round(seconds))
    return f'{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}' if s >= 3600 else f'{s // 60}:{s % 60:02d}'


def shown_classes(scores: np.ndarray, segments: Sequence[Tuple[float, float, int]], k: int = 6) -> List[int]:
    """The classes drawn as lines: the segments' labels by the time they cover, then the best mean scores."""
    cover: dict = {}
    for start, end, label in segments:
        cover[label] = cover.get(label, 0.0) + end - start
    chosen = sorted(cover, key=lambda c: -cover[c])[:k]
    for c in np.argsort(-scores.mean(axis=0), kind='stable') if len(scores) else []:
        if len(chosen) >= k:
            break
        if int(c) not in chosen:
            chosen.append(int(c))
    return chosen


def timeline_image(times: Sequence[Tuple[float, float]], scores: np.ndarray,
                   segments: Sequence[Tuple[float, float, int]], names: Sequence[str], duration: float,
                   title: str) -> Image.Image:
    """The picture of windows [start, end) seconds with W x C ``scores`` and (start, end, label) segments."""
    classes = shown_classes(scores, segments)
    colour = {c: COLOURS[i % len(COLOURS)] for i, c in enumerate(classes)}
    legend_rows = (len(classes) + 2) // 3
    height = MARGIN + 26 + PLOT_H + 28 + BAND_H + 12 + 22 * legend_rows + MARGIN
    image = Image.new('RGB', (WIDTH, height), 'white')
    draw = ImageDraw.Draw(image)
    font, small = _font(16), _font(12)
    draw.text((MARGIN, MARGIN), fit_width(title, font, WIDTH - 2 * MARGIN), font=font, fill=(20, 20, 20))
    x0, x1, y0 = LEFT, WIDTH - MARGIN, MARGIN + 26
    y1 = y0 + PLOT_H
    span = max(duration, 1e-6)
    x_of = lambda t: x0 + (x1 - x0) * min(max(t / span, 0.0), 1.0)  # noqa: E731
    y_of = lambda p: y1 - (y1 - y0) * float(p)  # noqa: E731
    for p in (0.0, 0.25, 0.5, 0.75, 1.0):
        draw.line([(x0, y_of(p)), (x1, y_of(p))], fill=(225, 225, 225) if p not in (0.0, 1.0) else (160, 160, 160))
        draw.text((x0 - 8, y_of(p)), f'{p:.2f}', font=small, fill=(90, 90, 90), anchor='rm')
    step = next((s for s in TICKS if duration / s <= 12), TICKS[-1])
    for k in range(int(duration // step) + 1):
        x = x_of(k * step)
        draw.line([(x, y1), (x, y1 + 4)], fill=(120, 120, 120))
        draw.text((x, y1 + 6), clock(k * step), font=small, fill=(90, 90, 90), anchor='ma')
    if len(scores):
        centres = np.array([(a + b) / 2 for a, b in times])
        columns = np.clip(((centres / span) * (x1 - x0)).astype(int), 0, x1 - x0)
        for c in reversed(classes):  # the first class drawn last, on top
            points = [(x0 + col, y_of(scores[columns == col, c].mean())) for col in np.unique(columns)]
            if len(points) == 1:
                points.append((points[0][0] + 1, points[0][1]))
            draw.line(points, fill=colour[c], width=2)
    band = y1 + 28
    for start, end, label in segments:
        a, b = x_of(start), x_of(end)
        draw.rectangle([a, band, max(a + 1, b - 1), band + BAND_H], fill=colour.get(label, OTHER))
        name = names[label]
        if b - a > 30:
            draw.text(((a + b) / 2, band + BAND_H / 2), fit_width(name, small, b - a - 6), font=small,
                      fill='white', anchor='mm')
    for i, c in enumerate(classes):
        lx, ly = MARGIN + (i % 3) * (WIDTH - 2 * MARGIN) // 3, band + BAND_H + 12 + 22 * (i // 3)
        draw.rectangle([lx, ly + 3, lx + 14, ly + 15], fill=colour[c])
        draw.text((lx + 20, ly + 9), fit_width(names[c], small, (WIDTH - 2 * MARGIN) // 3 - 30), font=small,
                  fill=(30, 30, 30), anchor='lm')
    return image


def write_timeline_png(path: Path, times: Sequence[Tuple[float, float]], scores: np.ndarray,
                       segments: Sequence[Tuple[float, float, int]], names: Sequence[str], duration: float,
                       title: str) -> Path:
    """``timeline_image`` written to ``path`` as PNG, atomically."""
    buf = io.BytesIO()
    timeline_image(times, scores, segments, names, duration, title).save(buf, format='PNG')
    return atomic_write_bytes(path, buf.getvalue())
