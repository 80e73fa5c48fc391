"""Runs inside .venv-infra (not the app's venv): parses Bicep files with pycep-parser and YAML files
with PyYAML, and prints one JSON document: {"bicep": {path: tree | {"error": ...}}, "yaml": {...}}.

    .venv-infra/bin/python tests/infra/infra_tool.py --bicep a.bicep b.bicep --yaml azure.yaml
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def parse_bicep(paths: list[str]) -> dict[str, Any]:
    from pycep import BicepParser  # type: ignore[import-not-found]

    parser = BicepParser()
    results: dict[str, Any] = {}
    for path in paths:
        try:
            results[path] = parser.parse(file_path=Path(path))
        except Exception as exc:  # report every file, not only the first failure
            results[path] = {"error": f"{type(exc).__name__}: {exc}"}
    return results


def parse_yaml(paths: list[str]) -> dict[str, Any]:
    import yaml  # type: ignore[import-untyped,import-not-found,unused-ignore]

    results: dict[str, Any] = {}
    for path in paths:
        try:
            results[path] = yaml.safe_load(Path(path).read_text())
        except Exception as exc:
            results[path] = {"error": f"{type(exc).__name__}: {exc}"}
    return results


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bicep", nargs="*", default=[])
    parser.add_argument("--yaml", nargs="*", default=[])
    args = parser.parse_args(argv)
    json.dump({"bicep": parse_bicep(args.bicep), "yaml": parse_yaml(args.yaml)}, sys.stdout, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
