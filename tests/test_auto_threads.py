"""The trainer's default thread count: the cores idle when a run starts (issue 14's measured
choice, docs/performance.md "Threads")."""

from __future__ import annotations

import os

import pytest
import torch

from convzoo.train import runtime


@pytest.mark.parametrize(("idle", "cores", "expected"), [(1.95, 2, 2), (1.02, 2, 1), (0.1, 2, 1), (7.4, 8, 7),
                                                          (3.0, 2, 2)])  # fmt: skip
def test_auto_threads_is_the_idle_cores(monkeypatch, idle, cores, expected):
    monkeypatch.setattr(runtime, "idle_cores", lambda seconds=0.1: idle)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    assert runtime.auto_threads() == expected


def test_auto_threads_without_proc_stat_is_torchs(monkeypatch):
    monkeypatch.setattr(runtime, "idle_cores", lambda seconds=0.1: None)
    assert runtime.auto_threads() == torch.get_num_threads()


def test_idle_cores_reads_this_machine():
    idle = runtime.idle_cores(0.05)
    assert idle is None or 0.0 <= idle <= (os.cpu_count() or 1) + 1e-6
