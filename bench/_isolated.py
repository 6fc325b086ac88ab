"""Run one measurement in a fresh process, so that peak memory and thread state start clean for each model."""

from __future__ import annotations

import multiprocessing as mp


def run_isolated(target, *args):
    """``target(*args, queue)`` in a spawned process: ``(exit code, what it put on the queue or None)``."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    proc.join()
    return proc.exitcode, (queue.get() if proc.exitcode == 0 else None)
