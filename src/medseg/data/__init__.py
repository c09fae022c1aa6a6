"""Datasets and built-in samples."""

from medseg.data.samples import sample_ct, sample_path

__all__ = ["sample_ct", "sample_path"]
