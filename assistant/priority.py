"""Thread priorities: under overload, work that must keep up with real time (the event loop,
the VAD) should win the cores over work that can wait a little (speech recognition).

Linux lets a process raise the niceness of its own threads one by one (``setpriority`` on a
thread id), without privileges. Elsewhere these helpers change nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable


def native_thread_ids() -> set[int]:
    """Kernel ids of this process's threads (Linux; empty elsewhere)."""
    try:
        return {int(t) for t in os.listdir("/proc/self/task")}
    except OSError:
        return set()


def lower_thread_priority(thread_ids: Iterable[int], nice: int) -> int:
    """Raise the niceness of these kernel threads by ``nice``. Returns how many were changed;
    a platform or permission that does not allow it changes nothing."""
    changed = 0
    for tid in thread_ids:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)
            changed += 1
        except (AttributeError, OSError):
            pass
    return changed
