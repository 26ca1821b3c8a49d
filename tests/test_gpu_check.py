"""``make gpu-check`` (``benchmarks/gpu_check.py``) in its CPU mode, ``--device cpu``: the GPU checks at small
sizes, so that the script cannot rot. Sampler statistics for every noise kind, votes across batch sizes,
autocast, a one-process torchrun (gloo) and the throughput lines must all run and pass. On a GPU machine
``make gpu-check`` runs them at full size on CUDA."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def run(*args: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300, env=environment
    )


def test_gpu_check_cpu_mode_passes():
    done = run("--device", "cpu")
    output = done.stdout
    assert done.returncode == 0, output + done.stderr[-2000:]
    assert "all checks passed" in output and "FAIL" not in output
    lines = (
        "sparse: 0 → 1 rate",
        "ablation: learned token",
        "levine-feizi: exactly m",
        "image votes equal",
        "autocast",
        "graph votes equal",
        "torchrun worker all-reduced the votes",
        "ResNet-50 3x32x32",
        "GAT random graph",
    )
    for line in lines:
        assert line in output, f"gpu-check printed no line {line!r}"


def test_gpu_check_refuses_cuda_without_a_gpu():
    if torch.cuda.is_available():
        return  # the full run is make gpu-check's job
    done = run("--device", "cuda")
    assert done.returncode == 2 and "CUDA is not available" in done.stdout
