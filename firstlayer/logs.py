"""Logging for workflow jobs: everything a job prints goes, line-buffered, to its log file, and
a known problem ends the job with one line instead of a traceback."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from tqdm import tqdm


def redirect_to(log_path) -> None:
    """Send stdout and stderr to `log_path` (created with its folder), line-buffered so that
    `tail -f` follows progress."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    stream = open(log_path, "w", buffering=1)
    sys.stdout = sys.stderr = stream


@contextlib.contextmanager
def job(log_path):
    """Run a workflow job's body with its output in `log_path`. The project's own errors (bad
    input, failed download, foreign file: InputError) end the job with their one line; anything
    else is a bug and keeps its traceback."""
    from firstlayer.errors import InputError

    redirect_to(log_path)
    try:
        yield
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


def progress(total: int, description: str, unit: str = "img") -> tqdm:
    """A progress bar for logs: a line at most every 5 s."""
    return tqdm(
        total=total,
        desc=description,
        unit=unit,
        mininterval=5,
        file=sys.stderr,
        ascii=True,
        dynamic_ncols=False,
    )


class ProgressBar:
    """A `progress(done, total)` callback for library functions: opens a `progress` bar on its
    first call and closes it when done reaches total."""

    def __init__(self, description: str, unit: str = "img"):
        self.description, self.unit, self.bar = description, unit, None

    def __call__(self, done: int, total: int) -> None:
        self.bar = self.bar or progress(total, self.description, self.unit)
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.bar.close()
