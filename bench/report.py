"""The markdown table and the verdict lines of issue 5's targets."""

from __future__ import annotations

import math
from typing import Any

ADAPTERS = ["builtin", "redis", "rabbitmq", "sqlite", "sqlite-full"]
SQLITE = ("sqlite", "sqlite-full")

TARGETS: list[tuple[str, str, str, dict[str, float]]] = [
    # (label, kind: ">=" or "<=", unit, per adapter)
    (
        "publish, one message per request",
        ">=",
        "msg/s",
        {"builtin": 4000, "redis": 3000, "rabbitmq": 3000, "sqlite": 3000, "sqlite-full": 3000},
    ),
    (
        "publish, batches of 100",
        ">=",
        "msg/s",
        {"builtin": 50000, "redis": 30000, "rabbitmq": 6000, "sqlite": 30000, "sqlite-full": 30000},
    ),
    (
        "drain, one subscription",
        ">=",
        "deliveries/s",
        {"builtin": 7000, "redis": 6000, "rabbitmq": 3500, "sqlite": 4900, "sqlite-full": 4900},
    ),
    (
        "drain / that backend's raw ceiling",
        ">=",
        "x",
        {"builtin": 0.7, "redis": 0.7, "rabbitmq": 0.7, "sqlite": 0.5, "sqlite-full": 0.5},
    ),
    (
        "drain / builtin's drain in the same run",
        ">=",
        "x",
        {"sqlite": 0.7, "sqlite-full": 0.7},
    ),
    (
        "drain / builtin's, draining together on one core",
        ">=",
        "x",
        {"sqlite": 0.7, "sqlite-full": 0.7},
    ),
    (
        "drain / Celery's best",
        ">=",
        "x",
        {"builtin": 6, "redis": 6, "rabbitmq": 4, "sqlite": 4, "sqlite-full": 4},
    ),
    (
        "latency p99 at 1,000 msg/s, first attempts",
        "<=",
        "ms",
        {"builtin": 5, "redis": 10, "rabbitmq": 15, "sqlite": 10, "sqlite-full": 10},
    ),
    (
        "hookline RSS with the backlog (N x 1 KB, targets for N = 100,000)",
        "<=",
        "MB",
        {"builtin": 400, "redis": 200, "rabbitmq": 200, "sqlite": 200, "sqlite-full": 200},
    ),
]


TARGETS_12: list[tuple[str, str, str, dict[str, float]]] = [
    (
        "publish, one message per request",
        ">=",
        "msg/s",
        {"builtin": 8000, "redis": 6000, "rabbitmq": 4000},
    ),
    (
        "publish, batches of 100",
        ">=",
        "msg/s",
        {"builtin": 100_000, "redis": 60_000, "rabbitmq": 20_000},
    ),
    (
        "drain, one subscription",
        ">=",
        "deliveries/s",
        {"builtin": 12000, "redis": 10000, "rabbitmq": 6000},
    ),
    (
        "highest rate with p99 <= 20 ms",
        ">=",
        "msg/s",
        {"builtin": 4000, "redis": 3000, "rabbitmq": 1500},
    ),
    ("p99 at 1,000 msg/s (sweep)", "<=", "ms", {"builtin": 5, "redis": 10, "rabbitmq": 25}),
    (
        "hookline RSS with the backlog (N x 1 KB, targets for N = 100,000)",
        "<=",
        "MB",
        {"builtin": 300, "redis": 150, "rabbitmq": 150},
    ),
]
"""Issue 12's targets: one hookline process pinned to one core (``--pinned``)."""

TARGETS_13: list[tuple[str, str, str, dict[str, float]]] = [
    (
        "insight log's cost of drain (median of on/off pairs)",
        "<=",
        "%",
        dict.fromkeys(ADAPTERS, 15.0),
    ),
    (
        "insight log's cost of drain (on and off draining together on one core)",
        "<=",
        "%",
        dict.fromkeys(ADAPTERS, 15.0),
    ),
]
"""Issue 13's target: the delivery insight log costs at most 15 % of drain."""


def fmt(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, str):
        return value
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def _ok(entry: Any) -> bool:
    return isinstance(entry, dict) and "unavailable" not in entry


def _why(entry: Any) -> str:
    if isinstance(entry, dict) and "unavailable" in entry:
        return f"unavailable: {entry['unavailable']}"
    return "not run"


def best_celery(results: dict[str, Any]) -> dict[str, Any] | None:
    runs = [r for r in results.get("peers", {}).get("celery", {}).values() if _ok(r)]
    return max(runs, key=lambda r: r["rate"]) if runs else None


def figures(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per adapter: the values the targets are checked against (None when not measured)."""
    celery = best_celery(results)
    out: dict[str, dict[str, Any]] = {}
    builtin_drain = results.get("adapters", {}).get("builtin", {}).get("drain")
    for kind in ADAPTERS:
        scen = results.get("adapters", {}).get(kind, {})
        ceiling = results.get("ceilings", {}).get(kind)
        pub, drain, lat, back, sweep, insight, duel, vs_builtin = (
            scen.get(s)
            for s in (
                "publish",
                "drain",
                "latency",
                "backlog",
                "sweep",
                "insight",
                "insight-duel",
                "builtin-duel",
            )
        )
        drain_rate = drain["rate"] if _ok(drain) else None
        out[kind] = {
            "publish, one message per request": pub["single_rate"] if _ok(pub) else _why(pub),
            "publish, batches of 100": pub["batch_rate"] if _ok(pub) else _why(pub),
            "drain, one subscription": drain_rate if drain_rate is not None else _why(drain),
            "drain / that backend's raw ceiling": (
                drain_rate / ceiling["rate"]
                if drain_rate is not None and _ok(ceiling) and ceiling["rate"]
                else _why(ceiling if drain_rate is not None else drain)
            ),
            "drain / builtin's drain in the same run": (
                drain_rate / builtin_drain["rate"]
                if drain_rate is not None and _ok(builtin_drain) and builtin_drain["rate"]
                else _why(builtin_drain if drain_rate is not None else drain)
            ),
            "drain / builtin's, draining together on one core": (
                vs_builtin["vs_builtin"] if _ok(vs_builtin) else _why(vs_builtin)
            ),
            "drain / Celery's best": (
                drain_rate / celery["rate"]
                if drain_rate is not None and celery and celery["rate"]
                else ("Celery not measured" if drain_rate is not None else _why(drain))
            ),
            "latency p99 at 1,000 msg/s, first attempts": lat["p99_ms"] if _ok(lat) else _why(lat),
            "hookline RSS with the backlog (N x 1 KB, targets for N = 100,000)": (
                back["peak_rss_mb"] if _ok(back) else _why(back)
            ),
            "highest rate with p99 <= 20 ms": sweep["best_rate"] if _ok(sweep) else _why(sweep),
            "p99 at 1,000 msg/s (sweep)": _sweep_p99(sweep, 1000.0),
            "insight log's cost of drain (median of on/off pairs)": (
                insight["cost_pct"] if _ok(insight) else _why(insight)
            ),
            "insight log's cost of drain (on and off draining together on one core)": (
                duel["cost_pct"] if _ok(duel) else _why(duel)
            ),
        }
    return out


def _sweep_p99(sweep: Any, rate: float) -> Any:
    if not _ok(sweep):
        return _why(sweep)
    for point in sweep["points"]:
        if point["rate"] == rate:
            return point["p99_ms"] if point["accepted"] == point["sent"] else float("inf")
    return "not reached (overloaded at a lower rate)"


def verdicts(
    results: dict[str, Any], targets: list[tuple[str, str, str, dict[str, float]]] = TARGETS
) -> list[str]:
    values = figures(results)
    lines = []
    for label, kind, unit, goals in targets:
        for adapter in ADAPTERS:
            if adapter not in goals or adapter not in results.get("adapters", {}):
                continue  # not run, or no such target for it
            value = values[adapter][label]
            goal = goals[adapter]
            goal_text = f"{kind} {fmt(goal, 1 if goal < 10 else 0)} {unit}"
            if isinstance(value, str):
                lines.append(f"- {adapter} · {label} ({goal_text}): NOT MEASURED ({value})")
                continue
            met = value >= goal if kind == ">=" else value <= goal
            digits = 2 if unit in {"x", "ms"} else 1 if unit == "%" else 0
            shown = f"{fmt(value, digits)} {unit}"
            lines.append(
                f"- {adapter} · {label}: {shown} (target {goal_text}): "
                + ("met" if met else "MISSED")
            )
    return lines


def _cell(entry: Any, render: Any) -> str:
    if not _ok(entry):
        return _why(entry)
    try:
        return str(render(entry))
    except (KeyError, TypeError, ValueError) as exc:
        return f"? ({exc})"


def latency_cell(point: dict[str, Any] | None) -> str:
    if not point:
        return "-"
    text = (
        f"{fmt(point['p50_ms'], 1)} / {fmt(point['p95_ms'], 1)} / {fmt(point['p99_ms'], 1)}"
        f" at {fmt(point['rate'])}/s"
    )
    if point.get("unanswered") or point.get("accepted", 0) < point.get("sent", 0):
        text += f" (overloaded: {fmt(point['accepted'])} of {fmt(point['sent'])} accepted in time)"
    return text


def table(results: dict[str, Any]) -> str:
    adapters = results.get("adapters", {})
    ceilings = results.get("ceilings", {})
    peers = results.get("peers", {})
    celery = best_celery(results)
    celery_fail = peers.get("celery_failures")
    arq_drain = peers.get("arq")
    arq_fail = peers.get("arq_failures")
    values = figures(results)

    def scen(kind: str, name: str) -> Any:
        return adapters.get(kind, {}).get(name)

    def failures_cell(entry: Any) -> str:
        return _cell(
            entry,
            lambda r: (
                f"{fmt(r['delivered'])} / {fmt(r['dead_lettered'])} / {len(r['lost'])} / "
                f"{fmt(r['duplicates'])}"
            ),
        )

    ceiling_names = {
        "builtin": "pyreqwest loop",
        "redis": "streams loop",
        "rabbitmq": "aio-pika loop",
        "sqlite": "pyreqwest loop",
        "sqlite-full": "pyreqwest loop",
    }
    rows: list[tuple[str, list[str], list[str]]] = [
        (
            "publish, 1 message per request (msg/s)",
            [_cell(scen(k, "publish"), lambda r: fmt(r["single_rate"])) for k in ADAPTERS],
            ["-", "-"],
        ),
        (
            "publish, batches of 100 (msg/s)",
            [_cell(scen(k, "publish"), lambda r: fmt(r["batch_rate"])) for k in ADAPTERS],
            ["-", "-"],
        ),
        (
            "publish CPU-seconds per 1,000 messages (single / batch)",
            [
                _cell(
                    scen(k, "publish"),
                    lambda r: f"{fmt(r['single_cpu_per_1k'], 3)} / {fmt(r['batch_cpu_per_1k'], 3)}",
                )
                for k in ADAPTERS
            ],
            ["-", "-"],
        ),
        (
            "drain, 1 subscription (deliveries/s)",
            [_cell(scen(k, "drain"), lambda r: fmt(r["rate"])) for k in ADAPTERS],
            [
                _cell(celery, lambda r: f"{fmt(r['rate'])} ({r['config']})") if celery else "-",
                _cell(arq_drain, lambda r: fmt(r["rate"])),
            ],
        ),
        (
            "raw ceiling, same run (deliveries/s)",
            [
                _cell(ceilings.get(k), lambda r, k=k: f"{fmt(r['rate'])} ({ceiling_names[k]})")
                for k in ADAPTERS
            ],
            ["-", "-"],
        ),
        (
            "drain / raw ceiling",
            [fmt(values[k]["drain / that backend's raw ceiling"], 2) for k in ADAPTERS],
            ["-", "-"],
        ),
        (
            "drain / Celery's best",
            [fmt(values[k]["drain / Celery's best"], 1) for k in ADAPTERS],
            ["1.0" if celery else "-", "-"],
        ),
        (
            "CPU-seconds per 1,000 deliveries (drain)",
            [_cell(scen(k, "drain"), lambda r: fmt(r["cpu_per_1k"], 3)) for k in ADAPTERS],
            [
                _cell(celery, lambda r: fmt(r["cpu_per_1k"], 3)) if celery else "-",
                _cell(arq_drain, lambda r: fmt(r["cpu_per_1k"], 3)),
            ],
        ),
        (
            "peak RSS during drain (MB)",
            [_cell(scen(k, "drain"), lambda r: fmt(r["peak_rss_mb"])) for k in ADAPTERS],
            [
                _cell(celery, lambda r: fmt(r["rss_mb"])) if celery else "-",
                _cell(arq_drain, lambda r: fmt(r["rss_mb"])),
            ],
        ),
        (
            "peak RSS with a backlog of N x 1 KB (MB)",
            [
                _cell(scen(k, "backlog"), lambda r: f"{fmt(r['peak_rss_mb'])} (N={fmt(r['n'])})")
                for k in ADAPTERS
            ],
            ["-", "-"],
        ),
        (
            "latency p50 / p95 / p99, first attempts (ms), at the issue's rate",
            [_cell(scen(k, "latency"), latency_cell) for k in ADAPTERS],
            ["-", "-"],
        ),
        (
            "the same at a rate hookline keeps up with",
            [
                _cell(scen(k, "latency"), lambda r: latency_cell(r.get("low_rate")))
                for k in ADAPTERS
            ],
            ["-", "-"],
        ),
        (
            "fan-out, K subscriptions (total deliveries/s)",
            [
                _cell(scen(k, "fanout"), lambda r: f"{fmt(r['rate'])} (K={r['subscriptions']})")
                for k in ADAPTERS
            ],
            ["-", "-"],
        ),
        (
            "ordered drain, 1,000 keys: deliveries/s (ordered / unordered, same run)",
            [
                _cell(
                    scen(k, "ordered"),
                    lambda r: (
                        f"{fmt(r['rate'])} ({fmt(r['ordered_vs_unordered'], 2)} of "
                        f"{fmt(r['rate_unordered'])})"
                    ),
                )
                for k in ADAPTERS
            ],
            ["-", "-"],
        ),
        (
            "insight log on / off, drain (median of pairs; CPU per delivery added)",
            [
                _cell(
                    scen(k, "insight"),
                    lambda r: (
                        f"{fmt(r['rate'])} / {fmt(r['rate_off'])} = "
                        f"{fmt(r['on_vs_off'], 2)}, cost {fmt(r['cost_pct'], 1)} % "
                        f"(pairs: {', '.join(fmt(x, 2) for x in r.get('on_vs_off_pairs', []))}; "
                        f"CPU +{fmt(r.get('cpu_added_pct', 0.0), 1)} %)"
                    ),
                )
                for k in ADAPTERS
            ],
            ["-", "-"],
        ),
        (
            "drain against builtin's, together on one core (delivered until one ended)",
            [
                _cell(
                    scen(k, "builtin-duel"),
                    lambda r: (
                        f"{fmt(r['delivered_this'])} / {fmt(r['delivered_builtin'])} = "
                        f"{fmt(r['vs_builtin'], 2)}"
                    ),
                )
                for k in ADAPTERS
            ],
            ["-", "-"],
        ),
        (
            "insight log on / off draining together on one core (delivered until one ended)",
            [
                _cell(
                    scen(k, "insight-duel"),
                    lambda r: (
                        f"{fmt(r['delivered_on'])} / {fmt(r['delivered_off'])} = "
                        f"{fmt(r['on_vs_off'], 2)}, cost {fmt(r['cost_pct'], 1)} %"
                    ),
                )
                for k in ADAPTERS
            ],
            ["-", "-"],
        ),
        (
            "failures: delivered / dead / lost / duplicates",
            [failures_cell(scen(k, "failures")) for k in ADAPTERS],
            [failures_cell(celery_fail) if celery_fail else "-", failures_cell(arq_fail)],
        ),
    ]
    rows[3:3] = floor_rows(results)
    rows += sweep_rows(results)
    head = "| figure | " + " | ".join(ADAPTERS) + " | Celery 5 + Redis (best pool) | arq (Redis) |"
    lines = [head, "| --- " * (len(ADAPTERS) + 3) + "|"]
    lines.extend(f"| {label} | " + " | ".join(cells + peer) + " |" for label, cells, peer in rows)
    return "\n".join(lines)


def _ratio(value: float, floor: Any) -> str:
    return fmt(value / floor, 2) if isinstance(floor, int | float) and floor else "-"


def floor_rows(results: dict[str, Any]) -> list[tuple[str, list[str], list[str]]]:
    """hookline's figures over the floors of the same run (issue 12), when they ran."""
    floors = results.get("floors")
    if not _ok(floors):
        return []
    adapters = results.get("adapters", {})
    publish = floors["publish"] if _ok(floors.get("publish")) else {}
    delivery = {k: v["rate"] for k, v in floors.get("delivery", {}).items() if _ok(v)}
    best = max(delivery.values(), default=None)

    def pub_ratio(kind: str) -> str:
        pub = adapters.get(kind, {}).get("publish")
        if not _ok(pub) or not publish:
            return "-"
        return (
            f"{_ratio(pub['single_rate'], publish['single_rate'])} / "
            f"{_ratio(pub['batch_rate'], publish['batch_rate'])}"
        )

    def drain_ratio(kind: str) -> str:
        drain = adapters.get(kind, {}).get("drain")
        if not _ok(drain) or not delivery:
            return "-"
        return " / ".join(f"{_ratio(drain['rate'], rate)}" for rate in delivery.values())

    names = " / ".join(delivery) or "none"
    return [
        (
            "publish / publish floor, same core (single / batch)",
            [pub_ratio(k) for k in ADAPTERS],
            ["-", "-"],
        ),
        (
            f"drain / delivery floor, same core ({names} loop)",
            [drain_ratio(k) for k in ADAPTERS],
            ["-", "-"],
        ),
        (
            "drain / best delivery floor",
            [
                _ratio(adapters[k]["drain"]["rate"], best)
                if _ok(adapters.get(k, {}).get("drain"))
                else "-"
                for k in ADAPTERS
            ],
            ["-", "-"],
        ),
    ]


def sweep_rows(results: dict[str, Any]) -> list[tuple[str, list[str], list[str]]]:
    """The open-loop sweep (issue 12): p50/p99 per rate, and the best rate under 20 ms."""
    adapters = results.get("adapters", {})
    sweeps = [adapters.get(k, {}).get("sweep") for k in ADAPTERS]
    if not any(_ok(s) for s in sweeps):
        return []

    def points(entry: dict[str, Any]) -> str:
        parts = []
        for p in entry["points"]:
            text = f"{fmt(p['rate'])}/s: {fmt(p['p50_ms'], 1)} / {fmt(p['p99_ms'], 1)}"
            if p["accepted"] < p["sent"]:
                text += " (overloaded)"
            parts.append(text)
        return "; ".join(parts)

    return [
        (
            "open-loop sweep, publish-to-receipt p50 / p99 (ms)",
            [_cell(s, points) for s in sweeps],
            ["-", "-"],
        ),
        (
            "highest rate with p99 <= 20 ms (msg/s)",
            [_cell(s, lambda r: fmt(r["best_rate"])) for s in sweeps],
            ["-", "-"],
        ),
    ]


def floor_lines(results: dict[str, Any]) -> list[str]:
    """The floors themselves, in words under the table."""
    floors = results.get("floors")
    if not _ok(floors):
        return []
    lines = []
    publish = floors.get("publish")
    if _ok(publish):
        lines.append(
            "Publish floor (raw ASGI app on uvicorn + uvloop + httptools, msgspec decoding, "
            f"same core as hookline): {fmt(publish['single_rate'])} req/s single, "
            f"{fmt(publish['batch_rate'])} msg/s in batches of 100 "
            f"({fmt(publish['single_cpu_per_1k'], 3)} / {fmt(publish['batch_cpu_per_1k'], 3)} "
            "CPU-s per 1,000)."
        )
    else:
        lines.append(f"Publish floor: {_why(publish)}.")
    parts = []
    for client, entry in floors.get("delivery", {}).items():
        if _ok(entry):
            per_k = entry["cpu_s"] / max(1, entry["n"]) * 1000
            parts.append(f"{client} {fmt(entry['rate'])}/s ({fmt(per_k, 3)} CPU-s per 1,000)")
        else:
            parts.append(f"{client} {_why(entry)}")
    lines.append(
        "Delivery floor (bare client loop, 64 concurrent, same receiver, same core as "
        "hookline): " + "; ".join(parts) + "."
    )
    return lines


def _ab_figures(entry: dict[str, Any]) -> list[tuple[str, float | None, bool]]:
    """(label, value, higher is better) of one adapter's scenarios, for the A/B table."""
    if not isinstance(entry, dict):
        return []
    out: list[tuple[str, float | None, bool]] = []
    publish = entry.get("publish") or {}
    if "single_rate" in publish:
        out += [
            ("publish, 1 message per request (msg/s)", publish["single_rate"], True),
            ("publish, batches of 100 (msg/s)", publish["batch_rate"], True),
            ("publish CPU-ms per message, single", publish["single_cpu_per_1k"], False),
            ("publish CPU-ms per message, batch", publish["batch_cpu_per_1k"], False),
        ]
    drain = entry.get("drain") or {}
    if "rate" in drain:
        out += [
            ("drain (deliveries/s)", drain["rate"], True),
            ("drain CPU-ms per delivery", drain["cpu_per_1k"], False),
        ]
    sweep = entry.get("sweep") or {}
    for point in sweep.get("points", []):
        rate = f"{point['rate']:,.0f}/s"
        out += [
            (f"sweep {rate}: p50 (ms)", point["p50_ms"], False),
            (f"sweep {rate}: p99 (ms)", point["p99_ms"], False),
            (f"sweep {rate}: CPU-ms per message", point.get("cpu_ms_per_message"), False),
        ]
    if "best_rate" in sweep:
        out.append(("highest rate with p99 <= 20 ms (msg/s)", sweep["best_rate"], True))
    return out


def ab_table(results: dict[str, Any]) -> str:
    """``--baseline-dir``: each figure on the baseline and on this checkout, same run."""
    heading = (
        f"Same-run A/B against `{results.get('baseline_dir')}` (each scenario ran on the "
        "baseline's app just before this one's):"
    )
    lines = [
        heading,
        "",
        "| adapter | figure | baseline | this | this / baseline |",
        "| --- | --- | --- | --- | --- |",
    ]
    for kind, base in results.get("baseline", {}).items():
        this = results.get("adapters", {}).get(kind, {})
        mine = {label: value for label, value, _ in _ab_figures(this)}
        theirs = _ab_figures(base)
        labels = [label for label, _, _ in theirs]
        theirs += [(label, None, True) for label in mine if label not in labels]
        for label, value, _ in theirs:
            other = mine.get(label)
            ratio = (
                f"{other / value:.2f}"
                if isinstance(other, int | float) and isinstance(value, int | float) and value
                else "-"
            )
            digits = 3 if "CPU" in label else (1 if "(ms)" in label else 0)
            lines.append(
                f"| {kind} | {label} | {fmt(value, digits)} | {fmt(other, digits)} | {ratio} |"
            )
    return "\n".join(lines)


def lost_total(results: dict[str, Any]) -> list[str]:
    """Every lost message of the run, labelled by where."""
    lost: list[str] = []

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("lost"), list):
                lost.extend(f"{prefix}: {i}" for i in node["lost"])
            for key, value in node.items():
                if key != "lost":
                    walk(f"{prefix}/{key}" if prefix else key, value)

    walk("", results)
    return lost
