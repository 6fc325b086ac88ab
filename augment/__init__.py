"""Data synthesis and augmentation for av-seld (spatial audio scenes, 360° video mosaics, channel swapping).

Layering: this package uses only av_seld's leaf modules (``errors``, ``classes``, ``geometry``, ``timing``, ``arrays``).
"""
