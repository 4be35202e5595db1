"""A terminal screen (tmux `capture-pane -e`: text with ANSI colour codes) drawn as a PNG,
for the README's Neovim screenshot. Understands what tmux writes: reset, bold, reverse,
the 16 colours, 256 colours and 24-bit colours; DejaVu Sans Mono from matplotlib."""

from __future__ import annotations

import re
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

SGR = re.compile(r"\x1b\[([0-9;]*)m")
BASE16 = [
    (0, 0, 0), (205, 49, 49), (13, 188, 121), (229, 229, 16),
    (36, 114, 200), (188, 63, 188), (17, 168, 205), (229, 229, 229),
    (102, 102, 102), (241, 76, 76), (35, 209, 139), (245, 245, 67),
    (59, 142, 234), (214, 112, 214), (41, 184, 219), (255, 255, 255),
]  # fmt: skip
DEFAULT_FG, DEFAULT_BG = (224, 226, 234), (20, 22, 27)


def _xterm256(n: int) -> tuple[int, int, int]:
    if n < 16:
        return BASE16[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return steps[n // 36], steps[n // 6 % 6], steps[n % 6]
    grey = 8 + 10 * (n - 232)
    return grey, grey, grey


def _apply(codes: list[int], style: dict) -> None:
    i = 0
    while i < len(codes):
        c = codes[i]
        if c == 0:
            style.update(fg=None, bg=None, bold=False, reverse=False)
        elif c == 1:
            style["bold"] = True
        elif c == 7:
            style["reverse"] = True
        elif c in (22,):
            style["bold"] = False
        elif c == 27:
            style["reverse"] = False
        elif 30 <= c <= 37 or 90 <= c <= 97:
            style["fg"] = BASE16[c - 30 if c < 90 else c - 82]
        elif 40 <= c <= 47 or 100 <= c <= 107:
            style["bg"] = BASE16[c - 40 if c < 100 else c - 92]
        elif c == 39:
            style["fg"] = None
        elif c == 49:
            style["bg"] = None
        elif c in (38, 48) and i + 1 < len(codes):
            key = "fg" if c == 38 else "bg"
            if codes[i + 1] == 5 and i + 2 < len(codes):
                style[key] = _xterm256(codes[i + 2])
                i += 2
            elif codes[i + 1] == 2 and i + 4 < len(codes):
                style[key] = tuple(codes[i + 2 : i + 5])
                i += 4
        i += 1


def render(screen: str, path: Path, columns: int, rows: int, size: int = 15) -> None:
    """Draw `screen` (`columns` x `rows` cells) into the PNG `path`."""
    fonts = Path(__import__("matplotlib").get_data_path()) / "fonts" / "ttf"
    regular = ImageFont.truetype(str(fonts / "DejaVuSansMono.ttf"), size)
    bold = ImageFont.truetype(str(fonts / "DejaVuSansMono-Bold.ttf"), size)
    _, top, _, bottom = regular.getbbox("M")
    cell_w, cell_h = int(regular.getlength("M")), int(size * 1.35)
    image = Image.new("RGB", (cell_w * columns + 16, cell_h * rows + 16), DEFAULT_BG)
    draw = ImageDraw.Draw(image)
    style: dict = {"fg": None, "bg": None, "bold": False, "reverse": False}
    for row, line in enumerate(screen.split("\n")[:rows]):
        col = 0
        for part in re.split(r"(\x1b\[[0-9;]*m)", line):
            match = SGR.fullmatch(part)
            if match:
                _apply([int(c) for c in match.group(1).split(";") if c] or [0], style)
                continue
            for ch in part:
                fg, bg = style["fg"] or DEFAULT_FG, style["bg"] or DEFAULT_BG
                if style["reverse"]:
                    fg, bg = bg, fg
                x, y = 8 + col * cell_w, 8 + row * cell_h
                draw.rectangle([x, y, x + cell_w, y + cell_h], fill=bg)
                font = bold if style["bold"] else regular
                draw.text((x, y + (cell_h - (bottom - top)) // 2 - top), ch, font=font, fill=fg)
                col += 1
        # the rest of a line keeps the background of its last cell (a status line)
        if style["bg"] or style["reverse"]:
            bg = (style["fg"] or DEFAULT_FG) if style["reverse"] else style["bg"]
            x, y = 8 + col * cell_w, 8 + row * cell_h
            draw.rectangle([x, y, 8 + columns * cell_w, y + cell_h], fill=bg)
    image.save(path, optimize=True)
