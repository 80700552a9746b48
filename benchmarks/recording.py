"""What every benchmark's result line starts with, and how it is kept: printed, and appended to its results file."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path


def facts(bench: str) -> dict:
    """The benchmark's name, the day, and the machine it ran on (its load just before, which skews timings)."""
    return {"bench": bench, "date": time.strftime("%Y-%m-%d"), "machine": platform.machine(), "cpus": os.cpu_count(),
            "load_before": round(os.getloadavg()[0], 2)}


def keep(result: dict, path: Path) -> None:
    line = json.dumps(result)
    print(line)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(line + "\n")
