"""Reaction counts as clients see them: every reaction type, zeros included."""

from __future__ import annotations

from shared_code.domain.limits import REACTION_TYPES


def full_reaction_counts(stored: dict[str, int] | None) -> dict[str, int]:
    """Every reaction type, zeros included, so clients need no defaults."""
    stored = stored or {}
    return {t: int(stored.get(t, 0)) for t in REACTION_TYPES}
