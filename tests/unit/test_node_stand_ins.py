"""The Node stand-ins' own tests (`npm test` in devhost/node: node's built-in test runner over the
pure modules: partition-key hashing checked against the azure-cosmos SDK's values, query
translation, patch), run as part of `make test`."""

from __future__ import annotations

import shutil
import subprocess

from devhost.settings_file import PROJECT_DIR

NODE_DIR = PROJECT_DIR / "devhost" / "node"


def test_the_node_modules_pass_their_npm_tests() -> None:
    npm = shutil.which("npm")
    assert npm, "npm is missing; it comes with Node.js, which `make` checks for"
    result = subprocess.run(
        [npm, "test", "--silent"], cwd=NODE_DIR, capture_output=True, text=True, timeout=120
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-8000:]
    assert "# fail 0" in report, report[-8000:]
    passed = int(report.rsplit("# pass ", 1)[1].split()[0])
    assert passed >= 15, report[-8000:]
