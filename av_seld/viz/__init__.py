"""Visualisation: direction overlays on 360° video (overlay), plots (plots), localization maps (maps), HTML run
reports (report). Submodules import their heavy dependencies (OpenCV, matplotlib, torch) themselves; this package
holds only the class colours they share, so that a class has the same colour in every picture."""

from __future__ import annotations

from av_seld.classes import NUM_CLASSES

# One RGB colour per class (index as in av_seld.classes.CLASS_NAMES), distinct on dark and light backgrounds.
CLASS_COLOURS_RGB: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),  # female speech: red
    (0, 130, 200),  # male speech: blue
    (255, 225, 25),  # clapping: yellow
    (60, 180, 75),  # telephone: green
    (245, 130, 48),  # laughter: orange
    (145, 30, 180),  # domestic sounds: purple
    (70, 240, 240),  # footsteps: cyan
    (240, 50, 230),  # door open/close: magenta
    (210, 245, 60),  # music: lime
    (250, 190, 212),  # musical instrument: pink
    (0, 128, 128),  # water tap: teal
    (170, 110, 40),  # bell: brown
    (255, 250, 200),  # knock: beige (lavender was too close to pink: 25.7 apart in CIELAB)
)
assert len(CLASS_COLOURS_RGB) == NUM_CLASSES


def class_colour_rgb(class_index: int) -> tuple[int, int, int]:
    """RGB colour (0..255) of a class; indices past the table cycle through it."""
    return CLASS_COLOURS_RGB[int(class_index) % len(CLASS_COLOURS_RGB)]


def class_colour_bgr(class_index: int) -> tuple[int, int, int]:
    """The same colour in OpenCV's BGR order."""
    r, g, b = class_colour_rgb(class_index)
    return (b, g, r)
