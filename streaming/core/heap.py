"""Keep the cyclic garbage collector off the objects a long-running client starts with.

A batch consumer holds a poll's worth of decoded events (hundreds of models, each a
dozen tracked objects) while its handler runs, so they survive young collections and
keep triggering full ones; a full collection then rescans every object of the process
(modules, schemas, SDKs: ~130,000 objects, ~100 ms on the 2-core bench machine), which
cost a batch consumer about a third of its CPU. :func:`freeze_startup_heap` moves what
exists once a client has started into the collector's permanent generation
(:func:`gc.freeze`, the standard library's own remedy), so full collections scan only
what came later. Frozen objects are still freed by reference counting; only cycles
among them are never collected, so the heap is collected once first.
"""

from __future__ import annotations

import gc

_frozen = False


def freeze_startup_heap() -> bool:
    """Collect, then freeze everything tracked so far; once per process (True if now)."""
    global _frozen
    if _frozen:
        return False
    _frozen = True
    gc.collect()
    gc.freeze()
    return True


__all__ = ["freeze_startup_heap"]
