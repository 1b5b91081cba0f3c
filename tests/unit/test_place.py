"""engine.machine.place reads torchrun's variables in one place; alone it is rank 0 of 1."""

from engine.machine.place import place

TORCHRUN = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE")


def test_alone_is_the_only_process(monkeypatch):
    for name in TORCHRUN:
        monkeypatch.delenv(name, raising=False)
    here = place()
    assert (here.rank, here.local_rank, here.world_size, here.nproc, here.node_rank, here.nnodes) == (0, 0, 1, 1, 0, 1)
    assert here.is_rank_zero and not here.several and not here.is_node_writer


def test_second_node_first_process_writes_its_node_events(monkeypatch):
    values = {"RANK": "2", "LOCAL_RANK": "0", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "1",
              "GROUP_WORLD_SIZE": "2"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    here = place()
    assert (here.rank, here.local_rank, here.world_size, here.nproc, here.node_rank, here.nnodes) == (2, 0, 4, 2, 1, 2)
    assert here.several and here.is_node_writer and not here.is_rank_zero
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert not place().is_node_writer
