"""`local.settings.example.json`: the settings the app reads, with their local values."""

from __future__ import annotations

import json
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
EXAMPLE_FILE = PROJECT_DIR / "local.settings.example.json"
LOCAL_FILE = PROJECT_DIR / "local.settings.json"


def example_settings() -> dict[str, str]:
    values: dict[str, str] = json.loads(EXAMPLE_FILE.read_text())["Values"]
    return values


def write_local_settings(values: dict[str, str], path: Path = LOCAL_FILE) -> None:
    """Write a local.settings.json for `func start` (it holds local secrets: git ignores it)."""
    document = json.loads(EXAMPLE_FILE.read_text())
    document["Values"] = values
    path.write_text(json.dumps(document, indent=2) + "\n")
    path.chmod(0o600)
