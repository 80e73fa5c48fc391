"""The Cosmos emulator's effective partition keys (devhost/node/cosmos/epk.js) equal what the
pinned azure-cosmos SDK computes now, so a new SDK pin that hashed differently fails here (the
Node tests hold the values the SDK computed once)."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

from azure.cosmos.partition_key import PartitionKey, _Undefined

from devhost.settings_file import PROJECT_DIR

ABSENT = "<absent>"
VALUES: list[Any] = ["bob", "", "ünïcødé ✓", "y" * 120, 7, 2.25, -3, True, False, None, ABSENT]
DEFINITIONS = [
    {"paths": ["/pk"], "kind": "Hash", "version": 2},
    {"paths": ["/pk"], "kind": "Hash", "version": 1},
    {"paths": ["/a", "/b"], "kind": "MultiHash", "version": 2},
]
_NODE = """
const { effectivePartitionKey, UNDEFINED_COMPONENT } = require("./cosmos/epk");
const { cases } = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
const component = v => (v === "<absent>" ? UNDEFINED_COMPONENT : v);
console.log(JSON.stringify(cases.map(([values, def]) => effectivePartitionKey(values.map(component), def))));
"""


def _sdk(values: list[Any], definition: dict[str, Any]) -> str:
    path = definition["paths"] if definition["kind"] == "MultiHash" else definition["paths"][0]
    key = PartitionKey(path=path, kind=definition["kind"], version=definition["version"])
    components = [_Undefined() if v == ABSENT else v for v in values]
    return str(key._get_effective_partition_key_string(components)).upper()


def test_the_emulator_hashes_partition_keys_as_the_pinned_sdk_does() -> None:
    cases: list[tuple[list[Any], dict[str, Any]]] = [
        ([value], definition) for definition in DEFINITIONS[:2] for value in VALUES
    ]
    cases += [(["tenant", value], DEFINITIONS[2]) for value in VALUES]
    node = shutil.which("node")
    assert node, "node is missing; make checks for Node.js 20+"
    result = subprocess.run(
        [node, "-e", _NODE],
        input=json.dumps({"cases": cases}),
        cwd=PROJECT_DIR / "devhost" / "node",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    emulator = json.loads(result.stdout)
    expected = [_sdk(values, definition) for values, definition in cases]
    mismatches = [
        (values, definition["kind"], definition["version"], got, want)
        for (values, definition), got, want in zip(cases, emulator, expected, strict=True)
        if got != want
    ]
    assert len(emulator) == 33
    assert mismatches == []
