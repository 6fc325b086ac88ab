"""The 13 STARSS23 sound classes (index: name), as in docs/conventions.md."""

CLASS_NAMES: tuple[str, ...] = (
    "female speech",
    "male speech",
    "clapping",
    "telephone",
    "laughter",
    "domestic sounds",
    "footsteps",
    "door open/close",
    "music",
    "musical instrument",
    "water tap",
    "bell",
    "knock",
)
NUM_CLASSES: int = len(CLASS_NAMES)
