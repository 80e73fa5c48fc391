"""The local services' memory options (docs/local-host.md "Memory")."""

from __future__ import annotations

import pytest

from devhost.services.process import NODE_MEMORY_OPTIONS, node_environment


def test_node_services_get_the_small_semi_spaces_after_the_callers_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NODE_OPTIONS", "--enable-source-maps")
    assert node_environment() == {"NODE_OPTIONS": f"--enable-source-maps {NODE_MEMORY_OPTIONS}"}
    monkeypatch.delenv("NODE_OPTIONS")
    assert node_environment() == {"NODE_OPTIONS": NODE_MEMORY_OPTIONS}


def test_a_semi_space_size_the_caller_chose_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODE_OPTIONS", "--max-semi-space-size=16")
    assert node_environment() == {}
