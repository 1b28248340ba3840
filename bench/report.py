"""What every benchmark prints and saves: progress lines, the machine, a JSON file."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

__all__ = ["machine", "say", "write_json"]


def say(message: str) -> None:
    """A progress line, on stderr so stdout holds only the figures."""
    print(message, file=sys.stderr, flush=True)


def machine(load: tuple[float, float, float]) -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "load_average_at_start": list(load),
            "python": platform.python_version()}


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
