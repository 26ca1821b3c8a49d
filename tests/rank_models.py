"""Models for the distributed tests, importable by torchrun's worker processes (``PYTHONPATH=tests``)."""

import os

from hiersmooth.models.images import SmallCNN


class FailsOnRank1(SmallCNN):
    """SmallCNN that raises in its third forward pass on rank 1 while ``HIERSMOOTH_TEST_FAIL=1``."""

    calls = 0

    def forward(self, x):
        FailsOnRank1.calls += 1
        if os.environ.get("HIERSMOOTH_TEST_FAIL") == "1" and os.environ.get("RANK") == "1" and FailsOnRank1.calls >= 3:
            raise RuntimeError("simulated failure of rank 1")
        return super().forward(x)
