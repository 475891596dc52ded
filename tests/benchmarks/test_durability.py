"""The bookkeeping of benchmarks/durability.py: what counts as lost and as a duplicate."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "durability.py"
sys.path.insert(0, str(_PATH.parent))
_spec = importlib.util.spec_from_file_location("durability_benchmark", _PATH)
durability = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)  # dataclasses look it up
_spec.loader.exec_module(durability)


def test_audit_counts_missing_acknowledged_events_and_repeats_but_not_unacknowledged_extras():
    missing, repeats = durability.audit(["a", "b", "c"], ["a", "c", "c", "c", "x", "x"])
    assert missing == {"b"}  # "x" was stored but never acknowledged (the kill came first): not lost
    assert repeats == 3  # two extra "c", one extra "x"
    assert durability.audit(["a"], ["a"]) == (set(), 0)


def test_every_event_of_a_run_gets_its_own_id_and_timestamp():
    ledger = durability.Ledger("run")
    rng = random.Random(0)
    events = [e for _ in range(50) for e in ledger.batch(rng, ["u1", "u2"], ["i1", "i2", "i3"])]
    assert 50 <= len(events) <= 150
    assert len({e["id"] for e in events}) == len({e["timestamp"] for e in events}) == len(events)
    assert all(e["id"].startswith("run-") for e in events)
