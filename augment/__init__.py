"""Data synthesis and augmentation for av-seld (spatial audio scenes, 360° video mosaics, channel swapping).

Layering: this package uses only the leaf modules ``av_seld.geometry`` and ``av_seld.timing``.
"""
