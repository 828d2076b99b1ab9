"""One video frame, annotated: lines of text in a dark box at its top left, a heat map blended in.

Frames are H x W x 3 uint8 RGB arrays; each function returns a new one. Text goes through
the class chart's font and label handling (``evaluation.reports``): unprintable
characters shown escaped, blank labels quoted, any Unicode the font has.
"""
from typing import Any, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

from evaluation.reports import _fit, _font

Box = Tuple[int, int, int, int]  # top, left, height, width

# 'jet'-like heat colours: dark blue (0) through cyan and yellow to red (1)
_STOPS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
_COLOURS = np.array([[0, 0, 140], [0, 90, 255], [0, 220, 220], [255, 220, 0], [215, 0, 0]], np.float32)
TOP_COLOUR, TEXT_COLOUR = (255, 225, 60), (245, 245, 245)


def font_for(height: int) -> Any:
    """The font for text on a frame ``height`` pixels high (8 to 22 pixels)."""
    return _font(max(8, min(22, height // 18)))


def fit_width(text: str, font: Any, width: float) -> str:
    """``text`` shown as the chart shows labels, cut with '...' to fit ``width`` pixels."""
    text = _fit(text, font, 200)
    measure = ImageDraw.Draw(Image.new('RGB', (1, 1))).textlength
    if measure(text, font=font) <= width:
        return text
    while text and measure(text + '...', font=font) > width:
        text = text[:-1]
    return text + '...'


def heat_colours(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (any shape) -> their colours (shape + (3,), float32 0-255)."""
    x = np.clip(values, 0, 1)
    return np.stack([np.interp(x, _STOPS, _COLOURS[:, c]) for c in range(3)], -1).astype(np.float32)


def blend_heat(frame: np.ndarray, heat: np.ndarray, box: Optional[Box] = None) -> np.ndarray:
    """``frame`` with ``heat`` (a 2-D map in [0, 1], any size) stretched over ``box`` (default: all of it).

    The colour's opacity grows with the value (0.25 to 0.6), so the box the model saw stays
    visible as a blue tint and its hot places stand out in red.
    """
    top, left, h, w = box or (0, 0, frame.shape[0], frame.shape[1])
    top, left = max(0, top), max(0, left)
    h, w = min(h, frame.shape[0] - top), min(w, frame.shape[1] - left)
    values = np.asarray(Image.fromarray(np.ascontiguousarray(heat, np.float32)).resize((w, h), Image.BILINEAR))
    values = np.clip(values, 0, 1)
    alpha = (0.25 + 0.35 * values)[..., None]
    out = frame.copy()
    region = out[top:top + h, left:left + w].astype(np.float32)
    out[top:top + h, left:left + w] = (region * (1 - alpha) + heat_colours(values) * alpha).round().astype(np.uint8)
    return out


def draw_lines(frame: np.ndarray, lines: Sequence[str], first_colour: Tuple[int, int, int] = TOP_COLOUR
               ) -> np.ndarray:
    """``frame`` with ``lines`` in a dark box at its top left (the first in ``first_colour``).

    The font scales with the frame; lines that would cover more than half its height are left
    out, and each is cut to the frame's width.
    """
    h, w = frame.shape[:2]
    font = font_for(h)
    ascent, descent = font.getbbox('Ag')[1], font.getbbox('Ag')[3]
    line_h, pad = descent - ascent + 3, 2
    shown = list(lines)[:max(1, (h // 2) // line_h)]
    texts = [fit_width(line, font, w - 2 * pad) for line in shown]
    measure = ImageDraw.Draw(Image.new('RGB', (1, 1))).textlength
    box_w = min(w, int(max((measure(t, font=font) for t in texts), default=0)) + 2 * pad)
    box_h = min(h, len(texts) * line_h + 2 * pad)
    out = frame.copy()
    out[:box_h, :box_w] = (out[:box_h, :box_w].astype(np.float32) * 0.35).astype(np.uint8)
    image = Image.fromarray(out)
    draw = ImageDraw.Draw(image)
    for i, text in enumerate(texts):
        draw.text((pad, pad + i * line_h - ascent), text, font=font, fill=first_colour if i == 0 else TEXT_COLOUR)
    return np.asarray(image)
