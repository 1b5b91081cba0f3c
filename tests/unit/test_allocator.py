"""Which C allocator a CPU trainer is started on (engine.machine.allocator)."""

from __future__ import annotations

import ctypes.util

import pytest

from engine.machine import allocator
from engine.machine.allocator import preload_env, tcmalloc_in_use


@pytest.fixture()
def libraries(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The libraries find_library finds, by name (none until a test adds one)."""
    found: dict[str, str] = {}
    monkeypatch.setattr(ctypes.util, "find_library", found.get)
    return found


def test_a_cpu_trainer_is_preloaded_with_tcmalloc_where_the_machine_has_it(libraries: dict[str, str]) -> None:
    assert preload_env({}) == {}
    libraries["tcmalloc"] = "libtcmalloc.so.4"
    assert preload_env({})["LD_PRELOAD"] == "libtcmalloc.so.4"
    libraries["tcmalloc_minimal"] = "libtcmalloc_minimal.so.4"  # the minimal one first
    env = preload_env({"LD_PRELOAD": "/opt/libfaketime.so"})
    assert env["LD_PRELOAD"] == "/opt/libfaketime.so libtcmalloc_minimal.so.4"  # the user's own preload kept
    assert int(env["TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD"]) >= 1 << 40  # no line per big logits tensor


def test_the_users_own_allocator_or_glibc_asked_for_is_left_alone(libraries: dict[str, str]) -> None:
    libraries["tcmalloc_minimal"] = "libtcmalloc_minimal.so.4"
    assert preload_env({"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"}) == {}
    assert preload_env({"TUITUNE_MALLOC": "glibc"}) == {}
    assert preload_env({"TUITUNE_MALLOC": "tcmalloc"}) != {}


def test_off_linux_nothing_is_preloaded(libraries: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    libraries["tcmalloc_minimal"] = "libtcmalloc_minimal.so.4"
    monkeypatch.setattr(allocator.sys, "platform", "darwin")
    assert preload_env({}) == {}


def test_this_process_is_not_on_tcmalloc() -> None:
    """pytest is started plainly: the check must say no (the trainer's yes is checked in test_train_tiny)."""
    assert not tcmalloc_in_use()
