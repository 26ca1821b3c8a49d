"""Experiments: grids of methods × parameters × seeds (``grid``), their runner (``runner``) and report (``report``)."""
