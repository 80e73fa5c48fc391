"""The alert rules and the workbook (infra/app/alerts.bicep, infra/app/workbook.json) name only metrics
the code reports (shared_code/metrics.py), the three alerts the operators rely on exist with their
thresholds, and docs/observability.md explains every metric. Read as text: no Bicep tooling needed."""

from __future__ import annotations

import json
import re
from pathlib import Path

from shared_code import metrics
from tests.unit.test_docs_links import anchors_of

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
ALERTS = INFRA / "app" / "alerts.bicep"
WORKBOOK = INFRA / "app" / "workbook.json"
OBSERVABILITY_DOC = REPO / "docs" / "observability.md"

METRIC_NAME = re.compile(r"\bchorus\.[a-z_]+(?:\.[a-z_]+)+")
RULE = re.compile(
    r"key: '(?P<key>[^']+)'.*?metric: '(?P<metric>[^']+)'\s+"
    r"timeAggregation: '(?P<aggregation>\w+)'\s+threshold: (?P<threshold>\w+)",
    re.DOTALL,
)


def infra_texts() -> dict[str, str]:
    return {
        str(path.relative_to(REPO)): path.read_text()
        for path in sorted(INFRA.rglob("*"))
        if path.suffix in {".bicep", ".json"}
    }


def alert_rules() -> dict[str, tuple[str, str]]:
    """metric -> (time aggregation, threshold) of each entry of `var rules` in alerts.bicep."""
    text = ALERTS.read_text()
    block = text[text.index("var rules = [") : text.index("resource alertRules")]
    return {m["metric"]: (m["aggregation"], m["threshold"]) for m in RULE.finditer(block)}


def test_infra_names_only_metrics_the_code_reports() -> None:
    named: dict[str, set[str]] = {}
    for path, text in infra_texts().items():
        for name in METRIC_NAME.findall(text):
            named.setdefault(name, set()).add(path)
    unknown = {name: sorted(paths) for name, paths in named.items() if name not in metrics.METRIC_NAMES}
    assert not unknown, f"infra/ names metrics shared_code/metrics.py does not report: {unknown}"
    assert set(named) == set(metrics.METRIC_NAMES), (
        f"metrics neither alerted on nor charted: {sorted(set(metrics.METRIC_NAMES) - set(named))}"
    )


def test_alert_rules_cover_lag_dead_events_and_change_feed_failures() -> None:
    assert alert_rules() == {
        # Above the threshold for the whole 5-minute window: its minimum exceeds it.
        metrics.OUTBOX_OLDEST_PENDING_AGE: ("Minimum", "outboxLagSeconds"),
        metrics.OUTBOX_DEAD: ("Maximum", "0"),
        metrics.CHANGE_FEED_OPEN_FAILURES: ("Maximum", "0"),
    }
    text = ALERTS.read_text()
    for needle in (
        "Microsoft.Insights/scheduledQueryRules@",
        "[for rule in rules:",
        'customMetrics | where name == "${rule.metric}"',
        "metricMeasureColumn: 'value'",
        "operator: 'GreaterThan'",
        "windowSize: 'PT5M'",
        "scopes: [\n      applicationInsightsId\n    ]",
        "actionGroups: actionGroupIds",
    ):
        assert needle in text, f"alerts.bicep should contain {needle!r}"


def test_the_action_group_exists_only_with_an_address_and_every_rule_uses_it() -> None:
    text = ALERTS.read_text()
    assert re.search(
        r"resource actionGroup 'Microsoft\.Insights/actionGroups@[\d-]+' = if \(!empty\(alertEmailAddress\)\)",
        text,
    )
    assert "actionGroupIds = empty(alertEmailAddress) ? [] : [\n  actionGroup.id\n]" in text
    main = (INFRA / "main.bicep").read_text()
    assert "module alerts 'app/alerts.bicep'" in main
    assert "alertEmailAddress: alertEmailAddress" in main
    assert "applicationInsightsId: monitoring.outputs.applicationInsightsId" in main


def test_lag_alert_threshold_defaults_to_the_health_threshold() -> None:
    main = (INFRA / "main.bicep").read_text()
    default = re.search(r"param outboxLagAlertSeconds int = (\d+)", main)
    assert default, "main.bicep should declare outboxLagAlertSeconds with a default"
    health = json.loads((INFRA / "app-settings.json").read_text())["HEALTH_OUTBOX_LAG_SECONDS"]
    assert int(default[1]) == int(health), (
        "outboxLagAlertSeconds and HEALTH_OUTBOX_LAG_SECONDS should agree: the alert fires where health "
        "turns degraded"
    )
    assert "outboxLagSeconds: outboxLagAlertSeconds" in main


def test_workbook_is_a_workbook_over_application_insights_charting_every_metric() -> None:
    assert "serializedData: loadTextContent('workbook.json')" in ALERTS.read_text()
    workbook = json.loads(WORKBOOK.read_text())
    assert workbook["version"] == "Notebook/1.0"
    queries = [item["content"] for item in workbook["items"] if item["type"] == 3]
    assert queries, "the workbook has no query"
    for query in queries:
        assert query["version"] == "KqlItem/1.0"
        assert query["resourceType"] == "microsoft.insights/components"
        assert query["query"].startswith("customMetrics"), query["query"]
    charted = {name for query in queries for name in METRIC_NAME.findall(query["query"])}
    assert charted == set(metrics.METRIC_NAMES), (
        f"not charted: {sorted(set(metrics.METRIC_NAMES) - charted)}; unknown: {sorted(charted - metrics.METRIC_NAMES)}"
    )


def test_each_alert_links_to_its_section_of_the_observability_doc() -> None:
    linked = re.findall(r"docs/observability\.md#([\w-]+)", ALERTS.read_text())
    assert len(linked) == len(alert_rules())
    missing = set(linked) - anchors_of(OBSERVABILITY_DOC)
    assert not missing, f"docs/observability.md has no sections {sorted(missing)}"


def test_the_observability_doc_explains_every_metric() -> None:
    doc = OBSERVABILITY_DOC.read_text()
    missing = [name for name in sorted(metrics.METRIC_NAMES) if f"`{name}`" not in doc]
    assert not missing, f"docs/observability.md does not describe {missing}"
