"""Certificates from vote counts: confidence bounds, discrete Neyman–Pearson regions, per-point and dataset results."""
