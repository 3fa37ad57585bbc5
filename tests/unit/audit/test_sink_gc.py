"""The sink process's GC setting: fewer young collections, the older thresholds kept."""

from __future__ import annotations

import gc

from connectors.audit_sink.runtime import SINK_GC_YOUNG_THRESHOLD, tune_gc


def test_tune_gc_raises_only_the_young_threshold() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == (SINK_GC_YOUNG_THRESHOLD, before[1], before[2])
    finally:
        gc.set_threshold(*before)
