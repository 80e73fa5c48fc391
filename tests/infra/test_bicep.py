"""Offline checks of infra/ (there is no Bicep CLI here; `az bicep build` and `what-if` run in
.github/workflows/infra.yml, which has network access):

- every .bicep file parses (pycep-parser), module parameters and outputs line up;
- checkov finds no failed check other than the ones .checkov.yaml skips, each with a reason;
- the Cosmos containers Bicep creates are exactly cosmos_indexes/*.json, partition key and TTL
  taken from the files;
- the app settings Bicep sets cover every setting local.settings.example.json names and every
  setting the code reads (local-only ones listed in infra/local-only-settings.json with a reason),
  connections use the managed identity and secrets come from Key Vault.

pycep-parser, PyYAML and checkov live in .venv-infra (requirements-infra.txt), not in the app's
virtual environment: they are run as subprocesses, once per module.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
MAIN = "infra/main.bicep"
COSMOS_MODULE = "infra/app/cosmos.bicep"
API_MODULE = "infra/app/api.bicep"
COSMOS_INDEXES = REPO / "cosmos_indexes"
INFRA_VENV = REPO / ".venv-infra"
INFRA_PYTHON = INFRA_VENV / "bin" / "python"
CHECKOV = INFRA_VENV / "bin" / "checkov"
TOOL = Path(__file__).with_name("infra_tool.py")
YAML_FILES = ["azure.yaml", ".github/workflows/infra.yml", ".checkov.yaml"]
BICEP_FILES = sorted(str(path.relative_to(REPO)) for path in INFRA.rglob("*.bicep"))

# Environment for an offline checkov: no update check against the package index, no guideline
# download, and a file that does not parse is a failure rather than a silent pass.
CHECKOV_ENV = {
    "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true",
    "BC_SKIP_MAPPING": "TRUE",
    "CKV_PARSE_ERROR_FAIL": "true",
}

# Built-in role ids the issue asks for, and broad ones that must never be granted.
REQUIRED_ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner (AzureWebJobsStorage)",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor (media)",
    "db58b8e5-c6ad-4a2a-8342-4190687cbf4a": "Storage Blob Delegator (media SAS)",
    "2b629674-e913-4c01-ae53-ef4638d8f975": "Azure Event Hubs Data Sender",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "00000000-0000-0000-0000-000000000002": "Cosmos DB Built-in Data Contributor",
}
BROAD_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
    "17d1049b-9a84-46fb-8f53-869881c3d3ab": "Storage Account Contributor",
    "00000000-0000-0000-0000-000000000001": "Cosmos DB Built-in Data Reader (unused)",
}


def _require(tool: Path) -> None:
    if not tool.exists():
        pytest.fail(
            f"{tool.relative_to(REPO)} is missing. The infra checks run in their own virtual environment: "
            "`make .venv-infra/.installed`, or `python3.11 -m venv .venv-infra && "
            ".venv-infra/bin/pip install -r requirements-infra.txt`.",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every .bicep file (and a deliberately broken one) parsed, and the YAML files loaded."""
    _require(INFRA_PYTHON)
    broken = tmp_path_factory.mktemp("bicep") / "broken.bicep"
    broken.write_text(
        "resource x 'Microsoft.Storage/storageAccounts@2024-01-01' = {\n  name: 'a'\n  kind: \n"
    )
    command = [str(INFRA_PYTHON), str(TOOL), "--bicep", *BICEP_FILES, str(broken), "--yaml", *YAML_FILES]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    data["broken"] = data["bicep"].pop(str(broken))
    return data


@pytest.fixture(scope="module")
def checkov_report() -> list[dict[str, Any]]:
    """One checkov run over infra/ with the committed .checkov.yaml."""
    _require(CHECKOV)
    result = subprocess.run(
        [str(CHECKOV), "--config-file", ".checkov.yaml", "--output", "json"],
        cwd=REPO,
        env={**os.environ, **CHECKOV_ENV},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.stdout.strip(), (
        f"checkov printed nothing (exit {result.returncode}): {result.stderr[-2000:]}"
    )
    report = json.loads(result.stdout)
    return report if isinstance(report, list) else [report]


# ------------------------------------------------------------------------------------------
# Helpers over pycep's JSON
# ------------------------------------------------------------------------------------------


def tree(parsed: dict[str, Any], path: str) -> dict[str, Any]:
    result: dict[str, Any] = parsed["bicep"][path]
    assert "error" not in result, f"{path}: {result.get('error')}"
    return result


def body(config: dict[str, Any]) -> dict[str, Any]:
    """The object of a resource or module, under any loop or condition wrappers."""
    while set(config) <= {"loop_type", "condition", "config"} and isinstance(config.get("config"), dict):
        config = config["config"]
    return config


def key_name(key: str) -> str:
    """pycep keeps the quotes of quoted object keys."""
    return key.strip("'")


def declared_parameters(module: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(all parameter names, those without a default)."""
    params = module.get("parameters", {})
    return set(params), {name for name, spec in params.items() if spec.get("default") is None}


def app_settings(parsed: dict[str, Any]) -> dict[str, Any]:
    """Name -> value of every app setting api.bicep sets: the appsettings resource is
    union(<variables>..., additionalAppSettings); each variable is an object literal or a
    loadJsonContent(...) of a JSON file. The operator's additionalAppSettings adds nothing here."""
    api = tree(parsed, API_MODULE)
    properties = body(api["resources"]["settings"]["config"])["properties"]
    assert properties["function"]["type"] == "union", (
        "the appsettings resource should be union(...) of variables"
    )
    settings: dict[str, Any] = {}
    for argument in properties["function"]["parameters"].values():
        if argument in api["parameters"]:
            continue
        value = api["variables"][argument]["value"]
        if isinstance(value, dict) and value.get("function", {}).get("type") == "load_json_content":
            source = (REPO / API_MODULE).parent / value["function"]["parameters"]["file_path"]
            value = json.loads(source.read_text())
            overlap = set(value) & set(settings)
            assert not overlap, f"{source.name} repeats settings api.bicep already sets: {sorted(overlap)}"
            assert all(isinstance(item, str) for item in value.values()), (
                f"{source.name}: app settings are strings"
            )
        settings.update({key_name(name): item for name, item in value.items()})
    return settings


def resolve(value: Any, variables: dict[str, Any]) -> Any:
    """A bare identifier that names a variable -> that variable's value."""
    if isinstance(value, str) and value in variables:
        return variables[value]["value"]
    return value


def evaluate(expression: Any, scope: dict[str, Any]) -> Any:
    """Evaluates the small part of Bicep a container body uses: literals, the loop item and
    `item.property`. Anything else is returned as is, so a comparison with the file fails."""
    if isinstance(expression, dict):
        operator = expression.get("operator")
        if isinstance(operator, dict) and operator.get("type") == "property_accessor":
            operands = operator["operands"]
            base = evaluate(operands["operand_1"], scope)
            if isinstance(base, dict) and isinstance(operands["operand_2"], str):
                return base.get(operands["operand_2"])
            return expression
        return {key_name(key): evaluate(value, scope) for key, value in expression.items()}
    if isinstance(expression, list):
        return [evaluate(item, scope) for item in expression]
    if isinstance(expression, str) and expression in scope:
        return scope[expression]
    return expression


ALIAS_CALLS = {"_alias", "AliasChoices"}


def setting_names_in_settings_py() -> dict[str, bool]:
    """Every app setting name shared_code/settings.py reads -> whether the field is a SecretStr."""
    source = (REPO / "shared_code" / "settings.py").read_text()
    names: dict[str, bool] = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.AnnAssign) or node.value is None:
            continue
        secret = "SecretStr" in ast.unparse(node.annotation)
        for call in ast.walk(node.value):
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id in ALIAS_CALLS:
                for argument in call.args:
                    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                        names[argument.value] = secret
    return names


_BINDING_CONNECTION = re.compile(r"""\bconnection\s*=\s*["']([A-Za-z_][\w]*)["']""")
_PERCENT_SETTING = re.compile(r"%([A-Za-z_][\w]*)%")
_ENVIRON_READ = re.compile(r"""os\.(?:environ\.get|environ\[|getenv)\(?\s*["']([A-Za-z_][\w]*)["']""")


def setting_names_read_by_code() -> dict[str, str]:
    """Setting name -> where it is read, for the bindings (connection=..., %NAME%) and direct
    environment reads in the deployed code (function_app.py, functions/, shared_code/)."""
    found: dict[str, str] = {}
    sources = [
        REPO / "function_app.py",
        *(REPO / "functions").rglob("*.py"),
        *(REPO / "shared_code").rglob("*.py"),
    ]
    for path in sources:
        text = path.read_text()
        for pattern in (_BINDING_CONNECTION, _PERCENT_SETTING, _ENVIRON_READ):
            for match in pattern.finditer(text):
                found.setdefault(match.group(1), str(path.relative_to(REPO)))
    return found


def covered(name: str, bicep_settings: set[str]) -> bool:
    """NAME is covered when Bicep sets NAME or its identity-based form NAME__<property>."""
    return name in bicep_settings or any(setting.startswith(f"{name}__") for setting in bicep_settings)


def local_only() -> dict[str, str]:
    data: dict[str, str] = json.loads((INFRA / "local-only-settings.json").read_text())
    return data


# ------------------------------------------------------------------------------------------
# Parsing and wiring
# ------------------------------------------------------------------------------------------


def test_every_bicep_file_parses(parsed: dict[str, Any]) -> None:
    assert MAIN in BICEP_FILES
    errors = {path: result["error"] for path, result in parsed["bicep"].items() if "error" in result}
    assert not errors, "Bicep files that do not parse:\n" + "\n".join(f"{p}: {e}" for p, e in errors.items())


def test_the_parser_rejects_broken_bicep(parsed: dict[str, Any]) -> None:
    assert "error" in parsed["broken"], "pycep accepted a broken file: the parse check would prove nothing"


def test_modules_exist_and_get_exactly_their_parameters(parsed: dict[str, Any]) -> None:
    problems = []
    for path in BICEP_FILES:
        for name, module in tree(parsed, path).get("modules", {}).items():
            assert module["type"] == "local", (
                f"{path}: module {name} is not a local file (offline checks need one)"
            )
            target = os.path.normpath(str(Path(path).parent / module["detail"]["path"]))
            if target not in parsed["bicep"]:
                problems.append(f"{path}: module {name} points at {target}, which does not exist")
                continue
            declared, required = declared_parameters(tree(parsed, target))
            given = set(body(module["config"]).get("params", {}))
            if unknown := given - declared:
                problems.append(
                    f"{path}: module {name} passes parameters {target} does not declare: {sorted(unknown)}"
                )
            if missing := required - given:
                problems.append(
                    f"{path}: module {name} leaves required parameters of {target} unset: {sorted(missing)}"
                )
    assert not problems, "\n".join(problems)


def test_module_outputs_that_are_used_exist(parsed: dict[str, Any]) -> None:
    problems = []
    for path in BICEP_FILES:
        modules = tree(parsed, path).get("modules", {})
        text = (REPO / path).read_text()
        for symbol, output in re.findall(r"\b(\w+)\.outputs\.(\w+)", text):
            if symbol not in modules:
                continue
            target = os.path.normpath(str(Path(path).parent / modules[symbol]["detail"]["path"]))
            if output not in tree(parsed, target).get("outputs", {}):
                problems.append(f"{path}: {symbol}.outputs.{output} is not an output of {target}")
    assert not problems, "\n".join(problems)


def test_every_main_parameter_is_described(parsed: dict[str, Any]) -> None:
    undescribed = [
        name
        for name, spec in tree(parsed, MAIN)["parameters"].items()
        if not any(decorator["type"] == "description" for decorator in spec["decorators"])
    ]
    assert not undescribed, f"main.bicep parameters without @description: {undescribed}"


def test_parameters_file_matches_main(parsed: dict[str, Any]) -> None:
    declared, required = declared_parameters(tree(parsed, MAIN))
    values = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert not set(values) - declared, (
        f"main.parameters.json sets unknown parameters: {sorted(set(values) - declared)}"
    )
    assert not required - set(values), (
        f"required parameters azd would not get: {sorted(required - set(values))}"
    )


def test_deploy_doc_names_every_parameter(parsed: dict[str, Any]) -> None:
    doc = (REPO / "docs" / "deploy.md").read_text()
    missing = [name for name in tree(parsed, MAIN)["parameters"] if f"`{name}`" not in doc]
    assert not missing, f"docs/deploy.md does not describe these main.bicep parameters: {missing}"


def test_outputs_azd_needs(parsed: dict[str, Any]) -> None:
    outputs = set(tree(parsed, MAIN)["outputs"])
    needed = {
        "AZURE_LOCATION",
        "AZURE_TENANT_ID",
        "AZURE_FUNCTION_APP_NAME",
        "SERVICE_API_NAME",
        "AZURE_KEY_VAULT_NAME",
        "AZURE_KEY_VAULT_ENDPOINT",
        "POSTGRES_APP_LOGIN",
    }
    assert needed <= outputs, f"missing outputs: {sorted(needed - outputs)}"
    # The migration hook reads these from the azd environment.
    hook = (INFRA / "scripts" / "migrate.py").read_text()
    for name in re.findall(r'env\.get\("([A-Z_]+)"', hook):
        if name.startswith(("AZURE_", "POSTGRES_APP_LOGIN")):
            assert name in outputs, f"infra/scripts/migrate.py reads {name}, which main.bicep does not output"


# ------------------------------------------------------------------------------------------
# Cosmos DB containers
# ------------------------------------------------------------------------------------------


def index_files() -> list[Path]:
    return sorted(COSMOS_INDEXES.glob("*.json"))


def test_cosmos_containers_are_exactly_the_index_files(parsed: dict[str, Any]) -> None:
    cosmos = tree(parsed, COSMOS_MODULE)
    loaded = []
    for entry in cosmos["variables"]["containerDefinitions"]["value"]:
        function = entry["function"]
        assert function["type"] == "load_json_content", f"not a loadJsonContent(...) entry: {entry}"
        loaded.append((REPO / COSMOS_MODULE).parent.joinpath(function["parameters"]["file_path"]).resolve())
    outside = [str(path) for path in loaded if path.parent != COSMOS_INDEXES]
    assert not outside, f"containers loaded from outside cosmos_indexes/: {outside}"
    in_bicep = sorted(path.name for path in loaded)
    on_disk = sorted(path.name for path in index_files())
    assert in_bicep == on_disk, (
        f"infra/app/cosmos.bicep lists {in_bicep} but cosmos_indexes/ holds {on_disk}: "
        "add or remove the loadJsonContent(...) lines so both match"
    )
    assert "leases.json" in on_disk, "the change feed needs the leases container"


def test_each_container_takes_partition_key_and_ttl_from_its_file(parsed: dict[str, Any]) -> None:
    container = tree(parsed, COSMOS_MODULE)["resources"]["containers"]["config"]
    loop = container["loop_type"]["detail"]
    assert loop["array_name"] == "containerDefinitions"
    assert container.get("condition") is None, "every container is always deployed"
    template = {key: value for key, value in body(container).items() if key != "parent"}
    for path in index_files():
        definition = json.loads(path.read_text())
        rendered = evaluate(template, {loop["item_name"]: definition})
        resource = rendered["properties"]["resource"]
        assert isinstance(resource, dict) and "partitionKey" in resource, (
            f"{path.name}: the container must be deployed from its file as is (properties.resource: <item>)"
        )
        assert rendered["name"] == path.stem == definition["id"], f"{path.name}: id must equal the file name"
        assert resource["partitionKey"] == definition["partitionKey"], f"{path.name}: partition key differs"
        assert resource.get("defaultTtl") == definition.get("defaultTtl"), f"{path.name}: default TTL differs"
        assert resource.get("indexingPolicy") == definition.get("indexingPolicy"), (
            f"{path.name}: indexing differs"
        )
        assert resource.get("uniqueKeyPolicy") == definition.get("uniqueKeyPolicy"), (
            f"{path.name}: unique keys differ"
        )
        # What ARM accepts for a container resource.
        key = definition["partitionKey"]
        assert key.get("kind") == "Hash" and len(key["paths"]) == 1 and key["paths"][0].startswith("/"), (
            path.name
        )
        ttl = definition.get("defaultTtl")
        assert ttl is None or (isinstance(ttl, int) and (ttl == -1 or ttl > 0)), (
            f"{path.name}: bad defaultTtl {ttl}"
        )
        allowed = {
            "id",
            "partitionKey",
            "indexingPolicy",
            "defaultTtl",
            "uniqueKeyPolicy",
            "conflictResolutionPolicy",
        }
        assert set(definition) <= allowed, (
            f"{path.name}: not a container resource property: {set(definition) - allowed}"
        )
    leases = json.loads((COSMOS_INDEXES / "leases.json").read_text())
    assert leases["partitionKey"]["paths"] == ["/id"], (
        "the change feed processor requires leases partitioned by /id"
    )


# ------------------------------------------------------------------------------------------
# App settings
# ------------------------------------------------------------------------------------------


def test_app_settings_cover_local_settings_example(parsed: dict[str, Any]) -> None:
    example = json.loads((REPO / "local.settings.example.json").read_text())["Values"]
    bicep_settings = set(app_settings(parsed))
    exempt = local_only()
    uncovered = [name for name in example if not covered(name, bicep_settings) and name not in exempt]
    assert not uncovered, (
        f"local.settings.example.json names {uncovered}, which infra/app/api.bicep does not set (as NAME or "
        "NAME__*): set them there, or list them in infra/local-only-settings.json with the reason"
    )


def test_app_settings_cover_what_the_code_reads(parsed: dict[str, Any]) -> None:
    bicep_settings = set(app_settings(parsed))
    exempt = local_only()
    read = {name: "shared_code/settings.py" for name in setting_names_in_settings_py()}
    read.update(setting_names_read_by_code())
    assert "POSTGRES_URL" in read, "could not find the settings the code reads"
    uncovered = {
        name: where
        for name, where in read.items()
        if not covered(name, bicep_settings) and name not in exempt
    }
    assert not uncovered, f"settings the code reads that Bicep does not set: {uncovered}"


def test_local_only_settings_are_explained_and_not_stale(parsed: dict[str, Any]) -> None:
    example = set(json.loads((REPO / "local.settings.example.json").read_text())["Values"])
    read = set(setting_names_in_settings_py()) | set(setting_names_read_by_code())
    bicep_settings = set(app_settings(parsed))
    for name, reason in local_only().items():
        assert len(reason.split()) >= 5, f"{name}: give the reason it is not an Azure app setting"
        assert name in example or name in read, (
            f"{name} is listed as local-only but nothing names it any more"
        )
        assert not covered(name, bicep_settings), f"{name} is listed as local-only but Bicep sets it"


def test_connections_use_the_managed_identity(parsed: dict[str, Any]) -> None:
    api = tree(parsed, API_MODULE)
    settings = app_settings(parsed)
    connections = {name.split("__")[0] for name in settings if "__" in name}
    assert {"AzureWebJobsStorage", "CosmosDB", "EventHubs", "MediaStorage"} <= connections
    for connection in connections:
        credential = resolve(settings.get(f"{connection}__credential"), api["variables"])
        assert credential == "managedidentity", f"{connection}__credential must be managedidentity"
        assert settings.get(f"{connection}__clientId") == "identityClientId", (
            f"{connection}__clientId must be set"
        )
    assert settings.get("AZURE_CLIENT_ID") == "identityClientId", (
        "DefaultAzureCredential must pick the app identity"
    )
    for name, value in settings.items():
        text = json.dumps(value)
        for marker in (
            "AccountKey=",
            "SharedAccessKey",
            "UseDevelopmentStorage",
            "listKeys",
            "InstrumentationKey=",
        ):
            assert marker not in text, f"{name} carries a key ({marker}); use the identity-based form"


def test_secret_settings_come_from_key_vault(parsed: dict[str, Any]) -> None:
    settings = app_settings(parsed)
    # Not a credential once the component's local auth is disabled (monitoring.bicep).
    not_secret_in_azure = {"APPLICATIONINSIGHTS_CONNECTION_STRING"}
    secrets = [name for name, secret in setting_names_in_settings_py().items() if secret]
    assert "POSTGRES_URL" in secrets and "CURSOR_SIGNING_KEY" in secrets
    for name in secrets:
        if name in settings and name not in not_secret_in_azure:
            value = settings[name]
            assert isinstance(value, str) and value.startswith("@Microsoft.KeyVault(SecretUri="), (
                f"{name} is a secret: set it as a Key Vault reference, not a plain value"
            )


def test_monitoring_and_data_services_disable_local_auth() -> None:
    expectations = {
        "infra/app/cosmos.bicep": ["disableLocalAuth: true", "disableKeyBasedMetadataWriteAccess: true"],
        "infra/app/eventhubs.bicep": ["disableLocalAuth: true"],
        "infra/app/storage-account.bicep": ["allowSharedKeyAccess: false", "allowBlobPublicAccess: false"],
        "infra/app/monitoring.bicep": ["DisableLocalAuth: true"],
        "infra/app/keyvault.bicep": ["enableRbacAuthorization: true"],
        "infra/app/postgres.bicep": ["'azure.extensions'", "value: 'CITEXT,UNACCENT'"],
    }
    for path, needles in expectations.items():
        text = (REPO / path).read_text()
        for needle in needles:
            assert needle in text, f"{path} should contain {needle!r}"


def test_postgres_app_login_is_entra_with_verify_full_and_no_allow_all_rule(parsed: dict[str, Any]) -> None:
    """The default profile: the app logs in with its managed identity (no password), TLS checks the
    server's certificate and name, and the allow-all-Azure firewall rule (0.0.0.0) is not there."""
    params = tree(parsed, MAIN)["parameters"]

    def default(name: str) -> Any:
        return params[name].get("default")

    assert default("postgresAppAuthentication") == "entra"
    assert default("postgresSslMode") == "verify-full"
    assert default("postgresSslRootCert")
    assert default("networkIsolation") is True and default("postgresAllowAzureServices") is False
    values = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert values["networkIsolation"]["value"] == "${NETWORK_ISOLATION=true}"
    main = (INFRA / "main.bicep").read_text()
    assert "allowAzureServices: !networkIsolation && postgresAllowAzureServices" in main
    # With Entra the app's URL has no password: `postgresql://ROLE@host...`.
    assert "var postgresEntraUrl = 'postgresql://${uriComponent(postgresAppRole)}${postgresUrlTail}'" in main
    assert "postgresUrl: postgresAppEntra ? postgresEntraUrl : postgresPasswordUrl" in main
    settings = app_settings(parsed)
    assert {"POSTGRES_ENTRA_AUTH", "POSTGRES_SSL_ROOT_CERT"} <= set(settings)
    postgres = (INFRA / "app" / "postgres.bicep").read_text()
    assert (
        "var useEntra = entraAuth ||" in postgres and "activeDirectoryAuth: useEntra ? 'Enabled'" in postgres
    )


def test_role_assignments_are_least_privilege() -> None:
    rbac = (INFRA / "app" / "rbac.bicep").read_text()
    missing = {role: name for role, name in REQUIRED_ROLES.items() if role not in rbac}
    assert not missing, f"roles not assigned: {missing}"
    for path in BICEP_FILES:
        text = (REPO / path).read_text()
        broad = {name for role, name in BROAD_ROLES.items() if role in text}
        assert not broad, f"{path} grants broad roles: {broad}"


# ------------------------------------------------------------------------------------------
# azd, the pipeline, checkov
# ------------------------------------------------------------------------------------------


def test_azure_yaml_deploys_the_function_app_and_migrates_first(parsed: dict[str, Any]) -> None:
    project = parsed["yaml"]["azure.yaml"]
    assert "error" not in project, project
    assert project["infra"]["path"] == "infra"
    api = project["services"]["api"]
    assert (api["host"], api["language"], api["project"]) == ("function", "python", ".")
    hook = project["hooks"]["predeploy"]
    for platform in ("posix", "windows"):
        assert "infra/scripts/migrate.py" in hook[platform]["run"]
        assert hook[platform]["continueOnError"] is False
    assert (INFRA / "scripts" / "migrate.py").exists()


def test_pipeline_builds_scans_and_runs_what_if(parsed: dict[str, Any]) -> None:
    workflow = parsed["yaml"][".github/workflows/infra.yml"]
    assert "error" not in workflow, workflow
    text = (REPO / ".github" / "workflows" / "infra.yml").read_text()
    for needle in ("az bicep build", "checkov", "what-if", "azure/login", "id-token: write"):
        assert needle in text, f"infra.yml should contain {needle!r}"
    # PyYAML reads the `on:` key as the boolean true (JSON: "true").
    triggers = workflow.get("on") or workflow.get("true")
    assert {"pull_request", "push"} <= set(triggers)


def test_every_checkov_skip_has_a_reason(parsed: dict[str, Any]) -> None:
    config = parsed["yaml"][".checkov.yaml"]
    skips = config["skip-check"]
    assert len(skips) == len(set(skips)), "a check is skipped twice"
    lines = (REPO / ".checkov.yaml").read_text().splitlines()
    for check in skips:
        line = next(line for line in lines if re.match(rf"\s*-\s*{re.escape(check)}\b", line))
        reason = line.partition("#")[2].strip()
        assert len(reason.split()) >= 5, f"{check}: a skip needs its one-line reason after '#'"
    assert config["directory"] == ["infra"] and "bicep" in config["framework"]


def test_checkov_finds_no_failed_check(checkov_report: list[dict[str, Any]]) -> None:
    failed = []
    scanned = 0
    for report in checkov_report:
        summary = report.get("summary", {})
        assert summary.get("parsing_errors", 0) == 0, f"checkov could not parse: {report.get('results')}"
        if report.get("check_type") == "bicep":
            scanned = summary.get("resource_count", 0)
        for check in report.get("results", {}).get("failed_checks", []):
            failed.append(
                f"{check['check_id']} {check['check_name']}: {check['resource']} ({check['file_path']})"
            )
    assert scanned >= 15, f"checkov scanned only {scanned} Bicep resources: is infra/ being read?"
    assert not failed, (
        "checkov failed checks (fix them, or skip in .checkov.yaml with a reason):\n" + "\n".join(failed)
    )
