"""What the training streams need to know about distributed (DDP) training."""

from __future__ import annotations

import numpy as np
import torch.distributed as dist


def process_rank() -> int:
    """Rank of this process in a running ``torch.distributed`` group; 0 without one."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def stream_generator(seed: int) -> np.random.Generator:
    """Random generator of a training stream, different on every DDP process.

    Rank 0 (and a single process) draws from ``seed`` alone, so single-process training is the
    same with or without DDP support; rank ``r > 0`` draws from ``(seed, r)``. Call it when the
    stream starts iterating, after Lightning has set up the process group.
    """
    rank = process_rank()
    return np.random.default_rng(seed if rank == 0 else [seed, rank])
