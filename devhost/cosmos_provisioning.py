"""Creates the Cosmos database and every container described in `cosmos_indexes/*.json`.

The same files feed Bicep in Azure, so local and deployed containers cannot drift.
Idempotent: an existing container is left as it is, except that its indexing policy's composite indexes
and its default TTL follow the file (data kept from an older version, `make run ARGS=--keep-data`, would
otherwise answer queries that need a newer composite index with 400).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from azure.cosmos import CosmosClient, PartitionKey

COSMOS_INDEXES_DIR = Path(__file__).resolve().parent.parent / "cosmos_indexes"


def container_definitions(directory: Path = COSMOS_INDEXES_DIR) -> list[dict[str, Any]]:
    definitions = []
    for path in sorted(directory.glob("*.json")):
        definition = json.loads(path.read_text())
        if definition.get("id") != path.stem:
            raise ValueError(f"{path}: its id must be the file name ({path.stem!r})")
        definitions.append(definition)
    return definitions


def provision(client: CosmosClient, database_name: str, directory: Path = COSMOS_INDEXES_DIR) -> list[str]:
    """Create the database and containers that are missing; return every container name."""
    database = client.create_database_if_not_exists(database_name)
    names = []
    for definition in container_definitions(directory):
        key = definition["partitionKey"]
        options: dict[str, Any] = {
            "partition_key": PartitionKey(path=key["paths"][0], kind=key.get("kind", "Hash")),
            "indexing_policy": definition.get("indexingPolicy"),
        }
        if "defaultTtl" in definition:
            options["default_ttl"] = definition["defaultTtl"]
        if "uniqueKeyPolicy" in definition:
            options["unique_key_policy"] = definition["uniqueKeyPolicy"]
        container = database.create_container_if_not_exists(id=definition["id"], **options)
        _update_if_changed(database, container, definition, options)
        names.append(definition["id"])
    return names


def _update_if_changed(
    database: Any, container: Any, definition: dict[str, Any], options: dict[str, Any]
) -> None:
    properties = container.read()
    wanted_composites = (definition.get("indexingPolicy") or {}).get("compositeIndexes") or []
    found_composites = (properties.get("indexingPolicy") or {}).get("compositeIndexes") or []
    if found_composites == wanted_composites and properties.get("defaultTtl") == definition.get("defaultTtl"):
        return
    database.replace_container(
        container,
        partition_key=options["partition_key"],
        indexing_policy=options["indexing_policy"],
        default_ttl=definition.get("defaultTtl"),
    )
