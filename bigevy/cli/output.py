"""What several command groups print with: the one console, relative times, progress bars."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import Progress, TimeElapsedColumn

console = Console()


def ago(when: float | None) -> str:
    """A timestamp as `5m ago`; `-` for never."""
    if when is None:
        return "-"
    seconds = time.time() - when
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{max(seconds, 0):.0f}s ago"


def progress_bar() -> Progress:
    """Rich's default bar with the time elapsed."""
    return Progress(*Progress.get_default_columns(), TimeElapsedColumn(), console=console)
