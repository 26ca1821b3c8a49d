"""Datasets to certify: image sets and graphs (``arrays`` reads them from plain ``.npz`` files)."""
