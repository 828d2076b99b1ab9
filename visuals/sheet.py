"""The examples contact sheet of an inference subset: a few right and a few wrong videos.

Each row is one video: its id, true and predicted labels (and the score) beside a strip of
its frames. ``pick_examples`` chooses the rows: the most confident predictions, one true
class at a time before a class comes twice.
"""
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

from common.atomic import atomic_write_bytes
from evaluation.reports import _font
from visuals.overlay import fit_width

THUMB_W, THUMB_H = 128, 96  # the box of one frame (the frame fits inside, aspect kept)
LABEL_W, GAP, MARGIN = 250, 4, 12
TITLE_H, HEADER_H = 30, 26
ROW_H = THUMB_H + 2 * GAP
RIGHT, WRONG = (46, 140, 60), (200, 50, 40)


@dataclass
class Example:
    """One video's row: its labels and its frames (H x W x 3 uint8; none if it could not be read)."""
    video_id: str
    truth: str
    predicted: str
    score: float
    frames: Sequence[np.ndarray]


Prediction = Tuple[str, str, float]  # (true label, predicted label, its score)


def pick_examples(predictions: Dict[str, Prediction], k: int = 4) -> Tuple[List[str], List[str]]:
    """Up to ``k`` right and ``k`` wrong video ids: most confident first, distinct true classes first."""
    def pick(ids: List[str]) -> List[str]:
        ids = sorted(ids, key=lambda v: (-predictions[v][2], v))
        chosen: List[str] = []
        for vid in ids:  # one per true class first
            if len(chosen) < k and predictions[vid][0] not in {predictions[c][0] for c in chosen}:
                chosen.append(vid)
        chosen += [vid for vid in ids if vid not in chosen][:k - len(chosen)]
        return chosen
    right = [v for v, (truth, predicted, _) in predictions.items() if truth == predicted]
    return pick(right), pick([v for v in predictions if v not in set(right)])


def sheet_size(n_right: int, n_wrong: int, n_frames: int) -> Tuple[int, int]:
    """(width, height) of a sheet of these rows (a section without rows takes one line)."""
    width = 2 * MARGIN + LABEL_W + n_frames * (THUMB_W + GAP)
    rows = max(n_right, 1) + max(n_wrong, 1)
    height = 2 * MARGIN + TITLE_H + 2 * HEADER_H + rows * ROW_H
    return width, height


def _thumbnail(frame: np.ndarray) -> Image.Image:
    image = Image.fromarray(frame)
    scale = min(THUMB_W / image.width, THUMB_H / image.height)
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                        Image.BILINEAR)


def _row(sheet: Image.Image, draw: ImageDraw.ImageDraw, y: int, ex: Example, n_frames: int) -> None:
    font, colour = _font(13), RIGHT if ex.truth == ex.predicted else WRONG
    draw.rectangle([MARGIN, y + GAP, MARGIN + 4, y + ROW_H - GAP], fill=colour)
    lines = [(ex.video_id, (60, 60, 60)), (f'true: {ex.truth}', (20, 20, 20)),
             (f'predicted: {ex.predicted}', colour), (f'score {ex.score:.3f}', (90, 90, 90))]
    for i, (text, fill) in enumerate(lines):
        draw.text((MARGIN + 10, y + GAP + 4 + i * 20), fit_width(text, font, LABEL_W - 16), font=font, fill=fill)
    x0 = MARGIN + LABEL_W
    for j in range(n_frames):
        x = x0 + j * (THUMB_W + GAP)
        draw.rectangle([x, y + GAP, x + THUMB_W - 1, y + GAP + THUMB_H - 1], fill=(235, 235, 235))
        if j < len(ex.frames):
            thumb = _thumbnail(ex.frames[j])
            sheet.paste(thumb, (x + (THUMB_W - thumb.width) // 2, y + GAP + (THUMB_H - thumb.height) // 2))


def contact_sheet(right: Sequence[Example], wrong: Sequence[Example], title: str, n_frames: int = 6,
                  totals: Tuple[int, int] = (0, 0)) -> Image.Image:
    """The sheet (PIL Image): the right rows, then the wrong ones; ``totals``: (right, wrong) videos in all."""
    width, height = sheet_size(len(right), len(wrong), n_frames)
    sheet = Image.new('RGB', (width, height), 'white')
    draw = ImageDraw.Draw(sheet)
    draw.text((MARGIN, MARGIN), fit_width(title, _font(16), width - 2 * MARGIN), font=_font(16), fill=(20, 20, 20))
    y = MARGIN + TITLE_H
    for name, rows, total, colour in (('Right', right, totals[0], RIGHT), ('Wrong', wrong, totals[1], WRONG)):
        header = f'{name}: {len(rows)} of {max(total, len(rows))} videos' + (
            ', evenly spaced frames of each' if rows else '')
        draw.text((MARGIN, y + 4), header, font=_font(14), fill=colour)
        y += HEADER_H
        for ex in rows:
            _row(sheet, draw, y, ex, n_frames)
            y += ROW_H
        if not rows:
            draw.text((MARGIN + 10, y + GAP + 4), 'none', font=_font(13), fill=(120, 120, 120))
            y += ROW_H
    return sheet


def write_contact_sheet(path: Path, right: Sequence[Example], wrong: Sequence[Example], title: str,
                        n_frames: int = 6, totals: Tuple[int, int] = (0, 0)) -> Path:
    """Draw the sheet and write it as a PNG, atomically."""
    buf = io.BytesIO()
    contact_sheet(right, wrong, title, n_frames, totals).save(buf, format='PNG')
    return atomic_write_bytes(path, buf.getvalue())
