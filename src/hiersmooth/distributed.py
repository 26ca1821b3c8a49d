"""Work sharing across processes started by ``torchrun`` (``torch.distributed``: gloo on CPU, nccl on GPUs).

Under ``torchrun --nproc_per_node=K -m hiersmooth certify ...`` every process reads RANK / WORLD_SIZE /
LOCAL_RANK from its environment. Work is dealt round-robin: image k goes to rank k mod K, and for a graph the
Monte-Carlo block b of each stage goes to rank b mod K. Each block has its own random stream
(``hiersmooth.seeds``), so the summed counts — and hence the votes — are exactly those of one process, whatever K.
Only rank 0 writes result files. A process started without torchrun is rank 0 of a world of one.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .devices import check_device


@dataclass
class Ranks:
    """This process's place in the world, and the seconds it spent communicating."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    communication_seconds: float = field(default=0.0)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def writer(self) -> bool:
        """Whether this process writes the outputs (rank 0)."""
        return self.rank == 0

    def mine(self, index: int) -> bool:
        """Whether work item ``index`` (an image, or a block of samples) belongs to this rank."""
        return index % self.world_size == self.rank

    def device(self, requested: str) -> str:
        """One GPU per rank: ``cuda`` becomes ``cuda:LOCAL_RANK`` under torchrun; other devices are kept."""
        return f"cuda:{self.local_rank}" if self.distributed and requested == "cuda" else requested

    def sum(self, array: np.ndarray) -> np.ndarray:
        """The element-wise sum of ``array`` over all ranks (an all-reduce; identity in a world of one)."""
        if not self.distributed:
            return array
        started = time.perf_counter()
        backend = torch.distributed.get_backend()
        tensor = torch.as_tensor(np.ascontiguousarray(array), dtype=torch.int64)
        if backend == "nccl":
            tensor = tensor.to(f"cuda:{self.local_rank}")
        torch.distributed.all_reduce(tensor)
        self.communication_seconds += time.perf_counter() - started
        return tensor.cpu().numpy()

    def barrier(self) -> None:
        if self.distributed:
            started = time.perf_counter()
            torch.distributed.barrier()
            self.communication_seconds += time.perf_counter() - started


def init_ranks(device: str = "cpu") -> Ranks:
    """Join the process group torchrun describes in the environment (gloo for CPU, nccl for CUDA), if any; the
    device is checked first (:func:`~hiersmooth.devices.check_device`)."""
    check_device(device, "--device")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Ranks()
    ranks = Ranks(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    if not torch.distributed.is_initialized():
        backend = "nccl" if str(device).startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(ranks.local_rank)
        torch.distributed.init_process_group(backend)
    return ranks
