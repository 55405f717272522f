"""The font of every picture: Pillow's default font at a size, and the size of a text in it."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont


def font(size: int) -> ImageFont.ImageFont:
    """Pillow's default font at ``size`` pixels (the fixed bitmap font on Pillow < 10.1)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def text_size(fnt: ImageFont.ImageFont, text: str) -> tuple[int, int]:
    """(width, height) in pixels of ``text`` drawn in ``fnt``."""
    left, top, right, bottom = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), text, font=fnt)
    return right - left, bottom - top
