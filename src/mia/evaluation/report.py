"""Plain-text tables of results, paper style."""

from __future__ import annotations

COLUMNS = ("R1", "R5", "R10", "total", "mAP", "mINP")
HEADERS = ("R@1", "R@5", "R@10", "Total", "mAP", "mINP")


def results_table(rows: list[tuple[str, dict]], columns=COLUMNS, headers=HEADERS,
                  title: str | None = None) -> str:
    """rows: (label, metrics dict) -> an aligned table."""
    width = max([len(label) for label, _ in rows] + [10])
    lines = [title] if title else []
    lines.append(f"{'':<{width}}" + "".join(f"{h:>9}" for h in headers))
    for label, metrics in rows:
        lines.append(f"{label:<{width}}" + "".join(f"{metrics[c]:>9.2f}" for c in columns))
    return "\n".join(lines)


def sweep_table(rows: list[dict], key: str) -> str:
    lines = [f"{key:>8}" + "".join(f"{h:>9}" for h in HEADERS[:4])]
    for row in rows:
        lines.append(f"{row[key]:>8.2f}" + "".join(f"{row[c]:>9.2f}" for c in COLUMNS[:4]))
    return "\n".join(lines)
