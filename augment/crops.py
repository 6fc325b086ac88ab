"""Object crops by class for the video mosaic: the built-in procedural sprites, or a folder of images.

Every crop is RGBA uint8 (h, w, 4) with straight alpha. A folder holds ``<root>/<class name or index>/*.png|jpg``
(class folders as for sound clips, :func:`augment.clips.class_index`); alpha is kept when an image has it, else the
image is opaque. ``av-seld extract-crops`` writes such a folder (:func:`write_crop`) plus an ``index.csv`` of where
each crop came from (:func:`read_index`). The built-in sprites are drawn with OpenCV primitives: one recognisable object
per class (people, hands, a phone, a laughing face, a kettle, shoes, a door, a loudspeaker, a guitar, a tap with water,
a bell, a fist on wood), with shapes, colours and textures varied by the generator and no downloads.
"""

from __future__ import annotations

import csv
import functools
import logging
import os
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from augment.clips import class_index
from av_seld.classes import CLASS_NAMES, NUM_CLASSES
from av_seld.errors import InputError
from av_seld.utils.atomic import atomic_path, is_listed

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
INDEX_NAME = "index.csv"
INDEX_COLUMNS = ("path", "class", "clip", "frame", "azimuth", "elevation", "fov")
SPRITE_SIZE = 128

# ------------------------------------------------------------------------------------ procedural sprites

Colour = tuple[int, int, int]


def _jitter(rng: np.random.Generator, rgb, amount: float = 30) -> Colour:
    return tuple(int(np.clip(c + rng.uniform(-amount, amount), 0, 255)) for c in rgb)


def _skin(rng: np.random.Generator) -> Colour:
    tones = [(241, 194, 160), (224, 172, 125), (198, 134, 66), (141, 85, 36), (255, 219, 172)]
    return _jitter(rng, tones[rng.integers(len(tones))], 12)


def _person(img, rng, s, female: bool):
    skin = _skin(rng)
    cx = s // 2
    head_r = int(s * rng.uniform(0.11, 0.14))
    head_y = int(s * 0.22)
    if female:  # long hair behind the head, a flared dress in warm colours
        hair = _jitter(rng, [(60, 30, 15), (200, 150, 60), (20, 15, 10), (150, 60, 20)][rng.integers(4)], 15)
        hair_axes = (int(head_r * 1.35), int(head_r * 2.0))
        cv2.ellipse(img, (cx, head_y + head_r // 2), hair_axes, 0, 0, 360, (*hair, 255), -1)
        dress = _jitter(rng, [(220, 40, 90), (240, 120, 170), (200, 30, 30), (160, 60, 200)][rng.integers(4)], 20)
        top = head_y + head_r
        pts = np.array([[cx - s * 0.12, top + 4], [cx + s * 0.12, top + 4], [cx + s * 0.34, s * 0.97],
                        [cx - s * 0.34, s * 0.97]], np.int32)
        cv2.fillPoly(img, [pts], (*dress, 255))
        cv2.circle(img, (cx, head_y), head_r, (*skin, 255), -1)
        cv2.ellipse(img, (cx, head_y - head_r // 2), (head_r, head_r // 2 + 2), 0, 180, 360, (*hair, 255), -1)
    else:  # short hair, square shoulders, a shirt in cool colours, a tie
        shirt = _jitter(rng, [(40, 70, 160), (90, 90, 100), (30, 110, 70), (20, 30, 60)][rng.integers(4)], 20)
        top = head_y + head_r
        cv2.rectangle(img, (int(cx - s * 0.3), top + 6), (int(cx + s * 0.3), s - 2), (*shirt, 255), -1)
        cv2.circle(img, (int(cx - s * 0.3), top + 16), 10, (*shirt, 255), -1)
        cv2.circle(img, (int(cx + s * 0.3), top + 16), 10, (*shirt, 255), -1)
        tie = np.array([[cx, top + 8], [cx - 5, top + 30], [cx, s * 0.75], [cx + 5, top + 30]], np.int32)
        cv2.fillPoly(img, [tie], (*_jitter(rng, (170, 20, 20), 40), 255))
        cv2.rectangle(img, (cx - head_r // 2, head_y), (cx + head_r // 2, top + 8), (*skin, 255), -1)
        cv2.circle(img, (cx, head_y), head_r, (*skin, 255), -1)
        hair = _jitter(rng, (40, 30, 20), 20)
        cv2.ellipse(img, (cx, head_y - head_r // 3), (head_r + 1, head_r // 2 + 3), 0, 180, 360, (*hair, 255), -1)
    cv2.ellipse(img, (cx, head_y + head_r // 2), (head_r // 3, head_r // 6 + 1), 0, 0, 180, (120, 30, 30, 255), -1)


def _hand(img, centre, angle, size, skin):
    palm = cv2.ellipse2Poly(centre, (int(size * 0.28), int(size * 0.36)), int(angle), 0, 360, 10)
    cv2.fillPoly(img, [palm], (*skin, 255))
    a = np.radians(angle - 90)
    for k, spread in enumerate((-0.5, -0.17, 0.17, 0.5)):
        base = (centre[0] + np.cos(a) * size * 0.3 + np.cos(a + np.pi / 2) * spread * size * 0.45,
                centre[1] + np.sin(a) * size * 0.3 + np.sin(a + np.pi / 2) * spread * size * 0.45)
        tip = (base[0] + np.cos(a) * size * (0.3 - 0.04 * abs(k - 1.5)), base[1] + np.sin(a) * size * 0.3)
        cv2.line(img, tuple(int(x) for x in base), tuple(int(x) for x in tip), (*skin, 255), max(3, int(size * 0.1)))


def _clapping(img, rng, s):
    skin = _skin(rng)
    tilt = rng.uniform(-15, 15)
    _hand(img, (int(s * 0.32), int(s * 0.55)), 25 + tilt, s * 0.6, skin)
    _hand(img, (int(s * 0.68), int(s * 0.55)), -25 + tilt, s * 0.6, _jitter(rng, skin, 10))
    for r in (0.12, 0.2):  # impact lines above the hands
        cv2.ellipse(img, (s // 2, int(s * 0.22)), (int(s * r), int(s * r * 0.6)), 0, 200, 340, (250, 220, 40, 255), 3)


def _telephone(img, rng, s):
    body = _jitter(rng, [(30, 30, 35), (200, 30, 30), (230, 230, 225)][rng.integers(3)], 20)
    x0, x1 = int(s * rng.uniform(0.25, 0.3)), int(s * rng.uniform(0.7, 0.75))
    cv2.rectangle(img, (x0, int(s * 0.08)), (x1, int(s * 0.92)), (*body, 255), -1)
    cv2.rectangle(img, (x0 + 6, int(s * 0.14)), (x1 - 6, int(s * 0.42)), (*_jitter(rng, (120, 200, 240), 20), 255), -1)
    key = _jitter(rng, (190, 190, 190), 30)
    for row in range(4):
        for col in range(3):
            cx = int(x0 + (x1 - x0) * (col + 1) / 4)
            cy = int(s * (0.5 + row * 0.1))
            cv2.circle(img, (cx, cy), max(3, s // 28), (*key, 255), -1)


def _laughter(img, rng, s):
    face = _jitter(rng, (250, 210, 40), 15)
    r = int(s * rng.uniform(0.4, 0.46))
    c = (s // 2, s // 2)
    cv2.circle(img, c, r, (*face, 255), -1)
    cv2.circle(img, c, r, (180, 120, 10, 255), 2)
    for side in (-1, 1):  # closed, laughing eyes
        cv2.ellipse(img, (c[0] + side * r // 3, c[1] - r // 4), (r // 6, r // 8), 0, 180, 360, (60, 30, 10, 255), 3)
        cv2.circle(img, (c[0] + side * int(r * 0.85), c[1] - r // 6), r // 8, (120, 200, 255, 255), -1)  # tears
    cv2.ellipse(img, (c[0], c[1] + r // 8), (int(r * 0.6), int(r * 0.55)), 0, 0, 180, (120, 20, 30, 255), -1)
    cv2.ellipse(img, (c[0], c[1] + r // 8), (int(r * 0.6), int(r * 0.15)), 0, 0, 180, (255, 255, 255, 255), -1)


def _domestic(img, rng, s):  # a kettle on a stove-coloured base
    metal = _jitter(rng, [(190, 195, 200), (220, 60, 50), (250, 250, 245)][rng.integers(3)], 15)
    cv2.ellipse(img, (s // 2, int(s * 0.6)), (int(s * 0.33), int(s * 0.3)), 0, 0, 360, (*metal, 255), -1)
    cv2.rectangle(img, (int(s * 0.2), int(s * 0.82)), (int(s * 0.8), int(s * 0.92)), (40, 40, 40, 255), -1)
    spout = np.array([[s * 0.78, s * 0.55], [s * 0.97, s * 0.35], [s * 0.93, s * 0.32], [s * 0.74, s * 0.45]], np.int32)
    cv2.fillPoly(img, [spout], (*metal, 255))
    cv2.ellipse(img, (s // 2, int(s * 0.32)), (int(s * 0.2), int(s * 0.2)), 0, 180, 360, (40, 40, 40, 255), 6)
    for k in range(3):  # steam
        x = int(s * (0.9 + 0.03 * k))
        cv2.ellipse(img, (x, int(s * (0.22 - 0.07 * k))), (5, 8), 0, 0, 360, (235, 235, 235, 190), 2)


def _footsteps(img, rng, s):
    shoe = _jitter(rng, [(60, 40, 25), (20, 20, 20), (230, 230, 230), (150, 30, 30)][rng.integers(4)], 20)
    for k, (x, y) in enumerate(((0.33, 0.7), (0.64, 0.35))):
        centre = (int(s * x), int(s * y))
        angle = rng.uniform(-20, 20) - 10
        cv2.ellipse(img, centre, (int(s * 0.13), int(s * 0.26)), angle, 0, 360, (*shoe, 255), -1)
        sole = (centre[0], centre[1] + int(s * 0.2))
        cv2.ellipse(img, sole, (int(s * 0.1), int(s * 0.06)), angle, 0, 360, (*_jitter(rng, (90, 90, 90), 20), 255), -1)
        for row in range(3):  # tread
            y_line = centre[1] - int(s * 0.12) + row * int(s * 0.08)
            cv2.line(img, (centre[0] - int(s * 0.08), y_line), (centre[0] + int(s * 0.08), y_line), (0, 0, 0, 255), 2)


def _door(img, rng, s):
    wood = _jitter(rng, [(140, 85, 40), (100, 60, 30), (210, 180, 140), (240, 240, 235)][rng.integers(4)], 15)
    x0, x1 = int(s * 0.22), int(s * 0.78)
    cv2.rectangle(img, (x0 - 5, 2), (x1 + 5, s - 1), (*_jitter(rng, (80, 80, 80), 20), 255), -1)  # frame
    cv2.rectangle(img, (x0, 6), (x1, s - 1), (*wood, 255), -1)
    darker = tuple(int(c * 0.75) for c in wood)
    for y0, y1 in ((0.1, 0.45), (0.55, 0.92)):
        cv2.rectangle(img, (x0 + 8, int(s * y0)), (x1 - 8, int(s * y1)), (*darker, 255), 3)
    cv2.circle(img, (x1 - 10, int(s * 0.52)), max(3, s // 22), (*_jitter(rng, (220, 190, 60), 20), 255), -1)


def _music(img, rng, s):  # a loudspeaker
    box = _jitter(rng, (35, 35, 40), 15)
    cv2.rectangle(img, (int(s * 0.22), int(s * 0.05)), (int(s * 0.78), int(s * 0.95)), (*box, 255), -1)
    cone = _jitter(rng, (110, 110, 120), 30)
    cv2.circle(img, (s // 2, int(s * 0.66)), int(s * 0.2), (*cone, 255), -1)
    cv2.circle(img, (s // 2, int(s * 0.66)), int(s * 0.07), (15, 15, 15, 255), -1)
    cv2.circle(img, (s // 2, int(s * 0.25)), int(s * 0.09), (*cone, 255), -1)
    cv2.circle(img, (s // 2, int(s * 0.25)), int(s * 0.03), (200, 200, 200, 255), -1)
    for k in (1, 2):  # musical notes beside it
        x = int(s * (0.06 if k == 1 else 0.86))
        y = int(s * (0.3 + 0.25 * k))
        cv2.circle(img, (x + 4, y), 5, (*_jitter(rng, (250, 60, 160), 40), 255), -1)
        cv2.line(img, (x + 8, y), (x + 8, y - 18), (*_jitter(rng, (250, 60, 160), 40), 255), 2)


def _instrument(img, rng, s):  # an acoustic guitar
    body = _jitter(rng, [(220, 130, 40), (170, 70, 20), (240, 190, 110)][rng.integers(3)], 15)
    neck_top = int(s * 0.04)
    cv2.rectangle(img, (s // 2 - 5, neck_top), (s // 2 + 5, int(s * 0.55)), (90, 55, 25, 255), -1)
    cv2.rectangle(img, (s // 2 - 8, neck_top), (s // 2 + 8, neck_top + 14), (40, 25, 10, 255), -1)
    cv2.circle(img, (s // 2, int(s * 0.58)), int(s * 0.17), (*body, 255), -1)
    cv2.circle(img, (s // 2, int(s * 0.78)), int(s * 0.21), (*body, 255), -1)
    cv2.circle(img, (s // 2, int(s * 0.62)), int(s * 0.065), (25, 15, 5, 255), -1)
    cv2.rectangle(img, (s // 2 - 12, int(s * 0.82)), (s // 2 + 12, int(s * 0.85)), (40, 25, 10, 255), -1)
    for dx in (-3, 0, 3):
        cv2.line(img, (s // 2 + dx, neck_top + 14), (s // 2 + dx, int(s * 0.83)), (230, 230, 230, 255), 1)


def _water_tap(img, rng, s):
    metal = _jitter(rng, (180, 185, 195), 20)
    cv2.rectangle(img, (int(s * 0.1), int(s * 0.18)), (int(s * 0.3), int(s * 0.3)), (*metal, 255), -1)
    cv2.rectangle(img, (int(s * 0.25), int(s * 0.12)), (int(s * 0.62), int(s * 0.22)), (*metal, 255), -1)
    cv2.rectangle(img, (int(s * 0.54), int(s * 0.12)), (int(s * 0.64), int(s * 0.36)), (*metal, 255), -1)
    handle = _jitter(rng, (60, 60, 200), 40)
    cv2.rectangle(img, (int(s * 0.35), int(s * 0.05)), (int(s * 0.45), int(s * 0.12)), (*handle, 255), -1)
    water = _jitter(rng, (80, 160, 250), 20)
    cv2.rectangle(img, (int(s * 0.56), int(s * 0.36)), (int(s * 0.62), int(s * 0.8)), (*water, 200), -1)
    for k in range(4):  # drops
        cv2.circle(img, (int(s * (0.5 + 0.05 * k)), int(s * (0.45 + 0.09 * k))), 3, (*water, 220), -1)
    basin = _jitter(rng, (235, 235, 240), 10)
    cv2.ellipse(img, (int(s * 0.55), int(s * 0.84)), (int(s * 0.42), int(s * 0.13)), 0, 0, 360, (*basin, 255), -1)
    cv2.ellipse(img, (int(s * 0.55), int(s * 0.82)), (int(s * 0.32), int(s * 0.07)), 0, 0, 360, (*water, 255), -1)


def _bell(img, rng, s):
    gold = _jitter(rng, (230, 180, 40), 20)
    cx = s // 2
    flare = s * rng.uniform(0.36, 0.44)
    pts = np.array([[cx - s * 0.14, s * 0.2], [cx + s * 0.14, s * 0.2], [cx + s * 0.22, s * 0.55],
                    [cx + flare, s * 0.8], [cx - flare, s * 0.8], [cx - s * 0.22, s * 0.55]], np.int32)
    cv2.ellipse(img, (cx, int(s * 0.22)), (int(s * 0.14), int(s * 0.1)), 0, 180, 360, (*gold, 255), -1)
    cv2.fillPoly(img, [pts], (*gold, 255))
    rim = tuple(int(c * 0.7) for c in gold)
    cv2.ellipse(img, (cx, int(s * 0.8)), (int(flare), int(s * 0.05)), 0, 0, 360, (*rim, 255), -1)
    cv2.circle(img, (cx, int(s * 0.88)), int(s * 0.06), (90, 70, 30, 255), -1)
    cv2.circle(img, (cx, int(s * 0.08)), int(s * 0.05), (*gold, 255), 3)
    cv2.line(img, (cx - int(s * 0.06), int(s * 0.35)), (cx - int(s * 0.08), int(s * 0.6)), (255, 250, 210, 255), 3)


def _knock(img, rng, s):  # a fist against a patch of wood with impact marks
    wood = _jitter(rng, (150, 100, 55), 20)
    cv2.rectangle(img, (int(s * 0.55), 0), (s - 1, s - 1), (*wood, 255), -1)
    for k in range(6):  # grain
        x = int(s * (0.6 + 0.065 * k))
        cv2.line(img, (x, 0), (x + int(rng.integers(-4, 5)), s - 1), (*tuple(int(c * 0.8) for c in wood), 255), 1)
    skin = _skin(rng)
    cv2.rectangle(img, (int(s * 0.05), int(s * 0.42)), (int(s * 0.3), int(s * 0.62)), (*skin, 255), -1)  # wrist
    cv2.ellipse(img, (int(s * 0.4), int(s * 0.5)), (int(s * 0.15), int(s * 0.18)), 0, 0, 360, (*skin, 255), -1)
    dark = tuple(int(c * 0.7) for c in skin)
    for k in range(4):  # knuckles
        cv2.circle(img, (int(s * 0.52), int(s * (0.38 + 0.08 * k))), int(s * 0.045), (*skin, 255), -1)
        cv2.circle(img, (int(s * 0.52), int(s * (0.38 + 0.08 * k))), int(s * 0.045), (*dark, 255), 1)
    for r in (0.1, 0.17, 0.24):
        cv2.ellipse(img, (int(s * 0.58), int(s * 0.5)), (int(s * r), int(s * r)), 0, -50, 50, (255, 240, 60, 255), 2)


_DRAWERS: tuple[Callable, ...] = (
    lambda img, rng, s: _person(img, rng, s, female=True), lambda img, rng, s: _person(img, rng, s, female=False),
    _clapping, _telephone, _laughter, _domestic, _footsteps, _door, _music, _instrument, _water_tap, _bell, _knock,
)
assert len(_DRAWERS) == NUM_CLASSES


def procedural_sprite(class_index: int, rng: np.random.Generator, size: int = SPRITE_SIZE) -> np.ndarray:
    """A class-distinctive object, RGBA uint8 (size, size, 4), transparent around it; varies with ``rng``.

    Drawn at 128 px, then given a random small rotation, aspect change and texture noise, and resized to ``size``.
    """
    if not 0 <= class_index < NUM_CLASSES:
        raise ValueError(f"class_index must be in 0..{NUM_CLASSES - 1}, got {class_index}")
    s = SPRITE_SIZE
    img = np.zeros((s, s, 4), np.uint8)
    _DRAWERS[class_index](img, rng, s)
    noise = rng.normal(0, rng.uniform(2, 8), size=(s, s, 1))
    img[..., :3] = np.clip(img[..., :3] + noise, 0, 255).astype(np.uint8)
    angle = rng.uniform(-12, 12)
    stretch = rng.uniform(0.85, 1.15)
    matrix = cv2.getRotationMatrix2D((s / 2, s / 2), angle, 1.0)
    matrix[0] *= stretch
    matrix[0, 2] += (1 - stretch) * s / 2
    img = cv2.warpAffine(img, matrix, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    img[img[..., 3] == 0, :3] = 0
    if size != s:
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if size < s else cv2.INTER_LINEAR)
    return img


# ------------------------------------------------------------------------------------ image folders


def read_rgba(path: str | os.PathLike) -> np.ndarray:
    """An image file as RGBA uint8 (h, w, 4): alpha from the file when it has one, else opaque."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputError(path, "cannot be read as an image")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGBA)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGBA)


@functools.lru_cache(maxsize=512)
def _read_cached(path: str) -> np.ndarray:
    image = read_rgba(path)
    image.flags.writeable = False
    return image


class CropBank:
    """Crops per class: ``draw(class_index, rng) -> RGBA uint8 (h, w, 4)``.

    ``CropBank.builtin()`` draws procedural sprites; ``CropBank.from_folder(root)`` picks one of the class's images.
    """

    def __init__(self, images: dict[int, list[Path]] | None, origin: str):
        self.images = None if images is None else {c: sorted(p) for c, p in images.items() if p}
        self.origin = origin

    @classmethod
    def builtin(cls) -> "CropBank":
        return cls(None, "builtin")

    @classmethod
    def from_folder(cls, root: str | os.PathLike) -> "CropBank":
        root = Path(root)
        if not root.is_dir():
            raise InputError(root, "crop folder not found")
        images: dict[int, list[Path]] = {}
        for sub in sorted(p for p in root.iterdir() if p.is_dir() and is_listed(p)):
            c = class_index(sub.name, sub)
            images.setdefault(c, []).extend(p for p in sub.iterdir()
                                            if p.suffix.lower() in IMAGE_SUFFIXES and is_listed(p))
        bank = cls(images, str(root))
        if not bank.images:
            raise InputError(root, "no images found; expected <root>/<class name or index>/*.png|jpg")
        return bank

    @classmethod
    def open(cls, spec: str | os.PathLike | None) -> "CropBank":
        """``None`` or ``"builtin"``: procedural sprites; otherwise a folder of images per class."""
        return cls.builtin() if spec is None or str(spec) == "builtin" else cls.from_folder(spec)

    def classes(self) -> list[int]:
        return list(range(NUM_CLASSES)) if self.images is None else sorted(self.images)

    def missing_classes(self, wanted) -> list[int]:
        have = set(self.classes())
        return [c for c in wanted if c not in have]

    def draw(self, class_index: int, rng: np.random.Generator) -> np.ndarray:
        """A crop of class ``class_index``, RGBA uint8 (h, w, 4); raises KeyError for a class without images."""
        if self.images is None:
            return procedural_sprite(class_index, rng)
        paths = self.images.get(class_index)
        if not paths:
            raise KeyError(f"{self.origin}: no crops for class {class_index} ({CLASS_NAMES[class_index]})")
        return _read_cached(str(paths[int(rng.integers(len(paths)))])).copy()


def write_crop(path: str | os.PathLike, crop_rgb: np.ndarray) -> None:
    """Write an RGB or RGBA uint8 crop as PNG, atomically (temporary file, then rename)."""
    code = cv2.COLOR_RGBA2BGRA if crop_rgb.shape[2] == 4 else cv2.COLOR_RGB2BGR
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(crop_rgb, code)):
            raise OSError(f"{path}: cannot write the PNG")


def read_index(root: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of ``<root>/index.csv`` (columns ``INDEX_COLUMNS``), [] when it does not exist."""
    path = Path(root) / INDEX_NAME
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
