"""`local.settings.example.json`: the settings the app reads, with their local values."""

from __future__ import annotations

import json
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
EXAMPLE_FILE = PROJECT_DIR / "local.settings.example.json"
LOCAL_FILE = PROJECT_DIR / "local.settings.json"
# The roles a local token can carry (devhost/tokens.py); here so the command line knows them without
# loading the signing code (the supervisor and the host process stay small).
TOKEN_ROLES = ("user", "moderator", "admin")


def example_settings() -> dict[str, str]:
    values: dict[str, str] = json.loads(EXAMPLE_FILE.read_text())["Values"]
    return values


def write_local_settings(values: dict[str, str], path: Path = LOCAL_FILE) -> None:
    """Write a local.settings.json for `func start` (it holds local secrets: git ignores it)."""
    document = json.loads(EXAMPLE_FILE.read_text())
    document["Values"] = values
    path.write_text(json.dumps(document, indent=2) + "\n")
    path.chmod(0o600)


# Rate limits for load generators (bench/, the schemathesis contract run, the fault suite's storms):
# they set these explicitly in the environment of the host they start, so the local stack and every
# other test keep the production defaults (docs/api.md "Limits").
LOAD_TEST_RATE_LIMITS: dict[str, str] = {
    "RATE_LIMIT_WRITES_PER_MINUTE": "1000000",
    "RATE_LIMIT_READS_PER_MINUTE": "1000000",
    "RATE_LIMIT_ANONYMOUS_PER_MINUTE": "1000000",
    "RATE_LIMIT_MEDIA_BYTES_PER_DAY": str(1 << 50),
    "RATE_LIMIT_MEDIA_PENDING_MAX": "1000000",
}
