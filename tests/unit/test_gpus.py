"""GPU listing through NVML: real cards, and every way NVML can be missing."""

from __future__ import annotations

import sys
import types

import pytest

from engine.machine.gpus import list_gpus


class NVMLError(Exception):
    """Stands in for pynvml.NVMLError."""


class NVMLError_LibraryNotFound(NVMLError):
    """No libnvidia-ml.so."""


def fake_nvml(cards: list[tuple[str, int, int]], init_error: Exception | None = None) -> types.ModuleType:
    """A pynvml module reporting ``cards`` as (name, total, free)."""
    module = types.ModuleType("pynvml")
    module.NVMLError, module.NVMLError_LibraryNotFound = NVMLError, NVMLError_LibraryNotFound

    def init() -> None:
        if init_error is not None:
            raise init_error

    module.nvmlInit, module.nvmlShutdown = init, lambda: None
    module.nvmlDeviceGetCount = lambda: len(cards)
    module.nvmlDeviceGetHandleByIndex = lambda i: i
    module.nvmlDeviceGetName = lambda i: cards[i][0].encode()
    module.nvmlDeviceGetMemoryInfo = lambda i: types.SimpleNamespace(total=cards[i][1], free=cards[i][2])
    return module


def test_cards_listed_with_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml",
                        fake_nvml([("NVIDIA H100", 80 << 30, 79 << 30), ("NVIDIA L4", 24 << 30, 1)]))
    gpus, note = list_gpus()
    assert note == ""
    assert [(g.index, g.name, g.total_bytes, g.free_bytes) for g in gpus] == [
        (0, "NVIDIA H100", 80 << 30, 79 << 30), (1, "NVIDIA L4", 24 << 30, 1)]


def test_no_driver_is_an_answer_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([], NVMLError_LibraryNotFound("not found")))
    assert list_gpus() == ([], "no NVIDIA driver")
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([]))
    assert list_gpus() == ([], "NVML found no GPU")


def test_this_machine_answers_consistently() -> None:
    gpus, note = list_gpus()
    assert (gpus and note == "") or (not gpus and note)
