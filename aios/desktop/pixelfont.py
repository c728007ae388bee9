"""Digits drawn pixel by pixel, for the icon's count badge at panel sizes.

At 16-31 px a scaled font is a grey smudge: anti-aliasing spreads a 1 px stroke over two pixels
at half contrast. These glyphs put every stroke on whole pixels, in the badge's ink at full
contrast, the way panel clocks and small bitmap fonts do: 5 x 7 (the classic LCD matrix) from
20 px, 3 x 5 below. Only what the badges need: the digits, "+" (for "9+") and "!".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from PIL import Image

Colour = tuple[int, int, int, int]

# "#" is ink, "." is left alone. Each glyph is as tall as its font; "+" sits on the middle row.
_FIVE_BY_SEVEN = {
    "0": (".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."),
    "1": ("..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "2": (".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"),
    "3": ("#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."),
    "4": ("...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."),
    "5": ("#####", "#....", "####.", "....#", "....#", "#...#", ".###."),
    "6": ("..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."),
    "7": ("#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."),
    "8": (".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."),
    "9": (".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."),
    "+": ("...", "...", ".#.", "###", ".#.", "...", "..."),
    "!": ("#", "#", "#", "#", "#", ".", "#"),
}
_THREE_BY_FIVE = {
    "0": ("###", "#.#", "#.#", "#.#", "###"),
    "1": (".#.", "##.", ".#.", ".#.", "###"),
    "2": ("###", "..#", "###", "#..", "###"),
    "3": ("###", "..#", ".##", "..#", "###"),
    "4": ("#.#", "#.#", "###", "..#", "..#"),
    "5": ("###", "#..", "###", "..#", "###"),
    "6": ("###", "#..", "###", "#.#", "###"),
    "7": ("###", "..#", "..#", ".#.", ".#."),
    "8": ("###", "#.#", "###", "#.#", "###"),
    "9": ("###", "#.#", "###", "..#", "###"),
    "+": ("...", ".#.", "###", ".#.", "..."),
    "!": ("#", "#", "#", ".", "#"),
}


@dataclass(frozen=True)
class PixelFont:
    height: int
    glyphs: Mapping[str, tuple[str, ...]]

    def width(self, text: str) -> int:
        """Pixels across ``text``, one blank column between glyphs."""
        return sum(len(self.glyphs[c][0]) for c in text) + max(len(text) - 1, 0)

    def draw(self, image: Image.Image, centre: tuple[float, float], text: str, ink: Colour) -> None:
        """Write ``text`` on ``image`` centred on ``centre`` (pixel coordinates, where 0.5 is
        the middle of the first pixel), its strokes snapped to whole pixels. What falls outside
        the image is left out: a tray may ask for an icon smaller than the text."""
        left = round(centre[0] - self.width(text) / 2)
        top = round(centre[1] - self.height / 2)
        for char in text:
            rows = self.glyphs[char]
            for y, row in enumerate(rows):
                for x, cell in enumerate(row):
                    at = (left + x, top + y)
                    if cell == "#" and 0 <= at[0] < image.width and 0 <= at[1] < image.height:
                        image.putpixel(at, ink)
            left += len(rows[0]) + 1


SMALL = PixelFont(5, _THREE_BY_FIVE)
REGULAR = PixelFont(7, _FIVE_BY_SEVEN)
