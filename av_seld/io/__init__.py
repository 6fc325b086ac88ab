"""Data I/O for STARSS23-format datasets: label CSVs, 4-channel wav, 360° video at the label rate, dataset index.

Submodules: ``labels`` (reference / prediction CSVs), ``audio`` (wav), ``video`` (reading and writing mp4),
``dataset`` (index of a dataset root).
"""
