"""One way to make processes take turns: an exclusive lock on a file, held for a `with` block.

Two pipelines on one machine must not prepare one TFDS dataset, set up one MLflow store, or
compute one stage fingerprint at the same time; each of those places holds this lock.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created with its folder if missing) until the block ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
