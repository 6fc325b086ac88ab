"""av-seld: audio-visual sound event localization and detection (DCASE Task 3 / STARSS23)."""

__version__ = "0.1.0"
