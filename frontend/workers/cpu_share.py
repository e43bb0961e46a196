"""How many CPU threads each serving worker may use: a pure function, no processes, no I/O.

llama.cpp's threads busy-wait at every barrier, so two workers that each take every core do not share the
CPU, they fight for it (a token costs a scheduler tick per barrier): ten times slower on a small machine.
Each busy worker gets an equal share of the budget; an idle one keeps its last share until it is busy
again (the manager writes each busy worker's share to its threads file, which the worker re-reads).
"""

from __future__ import annotations


def thread_share(budget: int, busy: int) -> int:
    """Threads for each of `busy` serving workers out of `budget`: an equal share, and at least one."""
    return max(1, budget // max(1, busy))
