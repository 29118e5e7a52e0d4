"""The gateway's garbage collector settings (gc_tuning.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from llmrelay import errors
from llmrelay.gateway import gc_tuning


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)
    gc.unfreeze()


def test_threshold_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMRELAY_GC_THRESHOLD", raising=False)
    assert gc_tuning.threshold_from_env() == gc_tuning.DEFAULT_THRESHOLD
    monkeypatch.setenv("LLMRELAY_GC_THRESHOLD", " 2500 ")
    assert gc_tuning.threshold_from_env() == 2500
    monkeypatch.setenv("LLMRELAY_GC_THRESHOLD", "0")
    assert gc_tuning.threshold_from_env() == 0
    for bad in ("-1", "many", "1.5"):
        monkeypatch.setenv("LLMRELAY_GC_THRESHOLD", bad)
        with pytest.raises(errors.ConfigError, match="LLMRELAY_GC_THRESHOLD"):
            gc_tuning.threshold_from_env()


def test_tune_freezes_start_up_objects_and_raises_the_first_threshold(restored_gc: None) -> None:
    _, second, third = gc.get_threshold()
    gc_tuning.tune(12_345)
    assert gc.get_threshold() == (12_345, second, third)
    assert gc.get_freeze_count() > 1000  # at least the imported modules' objects


def test_zero_leaves_the_collector_alone(restored_gc: None) -> None:
    gc.unfreeze()
    before = gc.get_threshold()
    gc_tuning.tune(0)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
