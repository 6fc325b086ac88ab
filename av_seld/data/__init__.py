"""Data pipelines built on `augment` and `av_seld.io`: dataset synthesis drivers (and, later, torch datasets)."""
