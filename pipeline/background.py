"""One background thread for the MLflow writes a process makes off its working threads.

A metric write costs milliseconds of CPU against the store. The epoch logger and the system-metrics
sampler hand theirs to this thread, in order, so neither training nor the end of a stage waits for
them. Everything submitted is written before the process exits: the pool is drained at exit (the CLI
runs exit handlers before it ends the process).
"""

from __future__ import annotations

import atexit
import functools
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

log = logging.getLogger(__name__)


@functools.cache
def _pool() -> ThreadPoolExecutor:
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow-writer")
    atexit.register(pool.shutdown, wait=True)
    return pool


def submit(function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
    """Run `function(*args, **kwargs)` on the writer thread, after everything submitted before it."""
    return _pool().submit(function, *args, **kwargs)


def warn_on_failure(what: str) -> Callable[[Future], None]:
    """A done-callback for writes nobody waits for: a failure is a warning naming `what`, never silence."""
    def check(future: Future) -> None:
        error = future.exception()
        if error is not None:
            log.warning(f"warning: {what} not recorded: {type(error).__name__}: {error}")

    return check
