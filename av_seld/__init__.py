"""av-seld: audio-visual sound event localization and detection (DCASE Task 3 / STARSS23).

``av_seld.load(CHECKPOINT).predict(WAV, video=MP4)`` is the Python API (:mod:`av_seld.api`).
"""

__version__ = "0.1.0"


def load(checkpoints, device="auto", tta=None):
    """Load one checkpoint, or several as an ensemble, for prediction (:func:`av_seld.api.load`)."""
    from av_seld.api import load as _load

    return _load(checkpoints, device, tta)


__all__ = ["load", "__version__"]
