"""Pixels of a PNG the tests took: which colours it holds."""

from __future__ import annotations

from pathlib import Path


def colours(png: Path) -> set[tuple[int, int, int]]:
    """Every RGB colour of the image."""
    from PIL import Image

    with Image.open(png) as image:
        counted = image.convert("RGB").getcolors(maxcolors=1 << 24) or []
        return {colour[:3] for _count, colour in counted}


def rgb(hex_colour: str) -> tuple[int, int, int]:
    """`#rrggbb` as an RGB triple."""
    value = hex_colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)
