"""Training, checkpoints, inference with sliding windows, threshold calibration and ensembles."""
