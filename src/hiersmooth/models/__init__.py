"""Models that take smoothed samples: image CNNs (``images``) and graph neural networks (``graphs``)."""
