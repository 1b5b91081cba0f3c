"""``python -m engine torchrun …``: torchrun, plus a one-machine rendezvous that listens on loopback only.

torchrun's own one-machine rendezvous (``--standalone``) puts its stores on TCP ports of every interface:
torch's TCPStore binds all of them whatever host it is given, and torchrun has no listen-address option.
On a rented box that faces the internet, anyone could reach them for the run's lifetime. torch offers two
supported hooks that together keep them on 127.0.0.1: a rendezvous backend of one's own
(``torch.distributed.elastic.rendezvous.registry``) and a store that serves a socket it is handed
(``TCPStore(master_listen_fd=…)``). The backend here, ``LOOPBACK_RENDEZVOUS``, is that: one node, rank 0, one
store on a socket bound to 127.0.0.1 on a free port, shared with the workers (``use_agent_store``), so
torchrun opens no other. The workers' own traffic (gloo, NCCL) is kept on the loopback interface by the
environment the supervisor gives them (``engine.supervisor.launch.train_command``).

Runs over several machines keep torchrun's static rendezvous at ``distributed.master``: there the store
must be reachable from the other nodes (README, Security).
"""

from __future__ import annotations

import datetime
import socket
import sys

from torch.distributed import PrefixStore, Store, TCPStore
from torch.distributed.elastic.rendezvous import (
    RendezvousHandler,
    RendezvousInfo,
    RendezvousParameters,
    RendezvousStoreInfo,
)
from torch.distributed.elastic.rendezvous import rendezvous_handler_registry as handlers

from engine.machine.place import LOOPBACK_RENDEZVOUS

HOST = "127.0.0.1"
TIMEOUT_S = 600
"""How long a worker waits on the store (torchrun's static rendezvous default)."""


class LoopbackRendezvous(RendezvousHandler):
    """The one node of a one-machine run: its store serves a socket on 127.0.0.1 only."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._listener: socket.socket | None = None
        self._store: Store | None = None

    def get_backend(self) -> str:
        return LOOPBACK_RENDEZVOUS

    @property
    def use_agent_store(self) -> bool:
        return True  # the workers use this store: torchrun opens no second one on every interface

    def next_rendezvous(self) -> RendezvousInfo:
        if self._store is None:
            self._listener = socket.create_server((HOST, 0), backlog=128)
            self._store = TCPStore(HOST, self._listener.getsockname()[1], 1, True,
                                   datetime.timedelta(seconds=TIMEOUT_S), multi_tenant=True,
                                   master_listen_fd=self._listener.fileno())
        port = self._listener.getsockname()[1]
        return RendezvousInfo(PrefixStore(self.run_id, self._store), 0, 1, RendezvousStoreInfo(HOST, port))

    def is_closed(self) -> bool:
        return False

    def set_closed(self) -> None:
        pass

    def num_nodes_waiting(self) -> int:
        return 0

    def get_run_id(self) -> str:
        return self.run_id

    def shutdown(self) -> bool:
        return True


def create_handler(params: RendezvousParameters) -> RendezvousHandler:
    """The handler for ``--rdzv-backend tuitune-loopback`` (one node only)."""
    if params.max_nodes != 1:
        raise ValueError(f"rendezvous {LOOPBACK_RENDEZVOUS} is for one machine; got --nnodes {params.max_nodes}")
    return LoopbackRendezvous(params.run_id)


def main(argv: list[str]) -> int:
    """torchrun's command line, with ``LOOPBACK_RENDEZVOUS`` among its rendezvous backends."""
    from torch.distributed.run import main as torchrun

    handlers.register(LOOPBACK_RENDEZVOUS, create_handler)
    torchrun(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
