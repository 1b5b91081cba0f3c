"""Where this process sits in a torchrun launch, read from the variables torchrun sets in each worker.

Alone (not under torchrun) every field says the single process: rank 0 of 1 on node 0 of 1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

LOOPBACK_RENDEZVOUS = "tuitune-loopback"
"""torchrun's rendezvous backend for a run on one machine (``--rdzv-backend``): the supervisor names it,
``python -m engine torchrun`` (engine.recipes.torchrun) provides it."""


@dataclass(frozen=True)
class Place:
    rank: int = 0
    """Global rank across every node (``RANK``)."""
    local_rank: int = 0
    """Rank on this node, also its GPU index among the visible ones (``LOCAL_RANK``)."""
    world_size: int = 1
    """Processes of the run across every node (``WORLD_SIZE``)."""
    nproc: int = 1
    """Processes on this node (``LOCAL_WORLD_SIZE``)."""
    node_rank: int = 0
    """This machine's place among the nodes (``GROUP_RANK``)."""
    nnodes: int = 1
    """Nodes of the run (``GROUP_WORLD_SIZE``)."""

    @property
    def several(self) -> bool:
        """Whether the run has more than one process."""
        return self.world_size > 1

    @property
    def is_rank_zero(self) -> bool:
        """The first process of the run: it writes the run's events, checkpoints and adapter."""
        return self.rank == 0

    @property
    def is_node_writer(self) -> bool:
        """The first process of a node other than 0: it writes that node's own events."""
        return self.node_rank > 0 and self.local_rank == 0


def place() -> Place:
    """This process's place, from the environment as it is now."""
    def read(name: str, default: int) -> int:
        return int(os.environ.get(name, default))

    return Place(rank=read("RANK", 0), local_rank=read("LOCAL_RANK", 0), world_size=read("WORLD_SIZE", 1),
                 nproc=read("LOCAL_WORLD_SIZE", 1), node_rank=read("GROUP_RANK", 0), nnodes=read("GROUP_WORLD_SIZE", 1))
