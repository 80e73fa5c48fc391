"""bench/results/latest.json (everything), latest.md (the table a person reads) and latest.png
(latency distributions as HDR percentile plots, and the host's memory over the run)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench.host import Sample
from bench.result import ScenarioResult

STATUS = {True: "✅ met", False: "❌ missed", None: "— reported"}


def write_json(path: Path, run: dict[str, Any], results: list[ScenarioResult]) -> None:
    document = {"run": run, "scenarios": [r.as_dict() for r in results]}
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")


def markdown(document: dict[str, Any]) -> str:
    """The table a person reads, from the latest.json document (`python -m bench.report` re-renders it)."""
    run = document["run"]
    scenarios: list[dict[str, Any]] = document["scenarios"]
    lines = [
        f"# Chorus benchmark — {'quick' if run.get('quick') else 'full'} run",
        "",
        f"{run['started_at']} · {run['machine']} · load average (1/5/15 min) at start {run['load_at_start']}, "
        f"at end {run['load_at_end']} · commit `{run['commit']}` · {run['seconds']:.0f} s",
        "",
        "Ratios compare with the physical limit measured in the same run at the same concurrency (direct "
        "psycopg for SQL, direct azure-cosmos upserts and reads for Cosmos), because absolute times on a "
        "shared machine drift; each ratio target alternates app and baseline in three short rounds and "
        "shows the median with the rounds' range. Reproduce with `make bench` (full) or "
        "`make bench ARGS=--quick`.",
        "",
    ]
    lines += [f"> {note}" for note in run.get("notes", [])] + ([""] if run.get("notes") else [])
    lines += targets_table(scenarios)
    lines += [
        "",
        "## Latency (ms, every request recorded in an HDR histogram)",
        "",
        "| scenario | series | count | p50 | p90 | p99 | max |",
        "|---|---|---|---|---|---|---|",
    ]
    for scenario in scenarios:
        for name, histogram in scenario.get("histograms", {}).items():
            s = histogram["summary"]
            if not s.get("count"):
                continue
            lines.append(
                f"| {scenario['name']} | {name} | {s['count']} | {s['p50_ms']:.2f} | {s['p90_ms']:.2f} | "
                f"{s['p99_ms']:.2f} | {s['max_ms']:.2f} |"
            )
    cost = next((s for s in scenarios if s["name"] == "cost_model" and not s.get("error")), None)
    if cost:
        lines += [
            "",
            "## Cost model: counted per operation (docs/cost-model.md prices it)",
            "",
            "| step | Cosmos requests | by container and operation | ≈ RU | PostgreSQL statements |",
            "|---|---|---|---|---|",
        ]
        for step in cost["figures"].get("steps", []):
            kinds = ", ".join(f"{k} ×{v}" for k, v in step["cosmos"]["by_container_operation"].items()) or "—"
            lines.append(
                f"| {step['step']} | {step['cosmos']['requests']} | {kinds} | "
                f"{step['cosmos']['estimated_ru']} | {step['postgres']['statements']} |"
            )
    lines += ["", "## Notes", ""]
    for scenario in scenarios:
        if scenario.get("notes"):
            lines += [f"### {scenario['name']}", ""]
            lines += [f"- {note}" for note in scenario["notes"]]
            lines.append("")
    return "\n".join(lines) + "\n"


def targets_table(scenarios: list[dict[str, Any]]) -> list[str]:
    """Every target of the run, measured, met or missed: the table of latest.md and of the README."""
    lines = ["| scenario | what | target | measured | status |", "|---|---|---|---|---|"]
    for scenario in scenarios:
        if scenario.get("error"):
            lines.append(
                f"| {scenario['name']} | failed to run | | `{_one_line(scenario['error'])}` | ❌ error |"
            )
            continue
        if scenario["name"] == "cost_model":
            lines.append(
                f"| cost_model | Cosmos requests and PostgreSQL statements per operation | counted | "
                f"{len(scenario['targets'])} steps (see below) | — reported |"
            )
            continue
        for target in scenario["targets"]:
            lines.append(
                f"| {scenario['name']} | {target['what']} | {target['target']} | {target['measured']} | "
                f"{STATUS[target['met']]} |"
            )
    return lines


def _one_line(text: str) -> str:
    return text.strip().splitlines()[-1][:200].replace("|", "\\|")


def write_png(
    path: Path, results: list[ScenarioResult], samples: list[Sample], spans: list[tuple[str, float, float]]
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with_histograms = [r for r in results if any(h.count for h in r.histograms.values())]
    panels = len(with_histograms) + 1
    columns = 2
    rows = math.ceil(panels / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(7 * columns, 4.2 * rows), squeeze=False)
    ticks = [50.0, 90.0, 99.0, 99.9, 99.99]
    for ax, result in zip(axes.flat, with_histograms, strict=False):
        for name, histogram in result.histograms.items():
            curve = [(p, v) for p, v in histogram.curve() if p < 100.0]
            if not curve:
                continue
            xs = [1.0 / (1.0 - p / 100.0) for p, _ in curve]
            ax.plot(xs, [v for _, v in curve], marker=".", label=f"{name} (n={histogram.count})")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks([1.0 / (1.0 - t / 100.0) for t in ticks], [f"p{t:g}" for t in ticks])
        ax.set_ylabel("latency (ms)")
        ax.set_title(result.name)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    memory_ax = axes.flat[len(with_histograms)]
    if samples:
        memory_ax.plot([s.t for s in samples], [s.host_rss_mb for s in samples], label="host process RSS")
        memory_ax.plot([s.t for s in samples], [s.tree_rss_mb for s in samples], label="host + services RSS")
        for index, (name, start, end) in enumerate(spans):
            memory_ax.axvspan(start, end, alpha=0.08, color=f"C{index % 10}")
            memory_ax.text(
                start,
                0.98,
                name,
                rotation=90,
                va="top",
                fontsize=7,
                transform=memory_ax.get_xaxis_transform(),
            )
    memory_ax.set_xlabel("seconds into the run")
    memory_ax.set_ylabel("MiB")
    memory_ax.set_title("memory of the local host")
    memory_ax.legend(fontsize=7)
    for ax in list(axes.flat)[panels:]:
        ax.set_visible(False)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.report [bench/results/latest.json]`: write latest.md again from latest.json."""
    import sys

    path = Path((argv if argv is not None else sys.argv[1:] or ["bench/results/latest.json"])[0])
    path.with_suffix(".md").write_text(markdown(json.loads(path.read_text())))
    print(f"wrote {path.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
