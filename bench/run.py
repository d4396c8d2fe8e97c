"""The benchmark suite: ``python -m bench.run [--quick] [--adapters ...] [--scenarios ...]``.

Starts the bench receiver, measures its ceiling, then for every adapter its raw ceiling and
the scenarios of issue 5, then the peers (Celery, arq) on the same receiver, and prints one
markdown table plus a verdict line per target. Exit status: 0 on a clean run, 1 when a
message was lost (the run is invalid), 2 when the harness itself broke.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import shlex
import signal
import socket
import sys
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

from bench import peer_runner, scenarios
from bench.common import BENCH, PYTHON, Processes, pin_cores, wait_for_quiet
from bench.floors import floors
from bench.receiver import run_loop
from bench.report import TARGETS_12, TARGETS_13, ab_table, floor_lines, lost_total, table, verdicts
from bench.scenarios import FULL, QUICK, Context, ReceiverClient
from bench.service import HOOKLINE_DIR, WORKERS, UnavailableError, check_adapter_importable

ALL_ADAPTERS = ["builtin", "redis", "rabbitmq", "sqlite", "sqlite-full"]
ALL_SCENARIOS = ["receiver", "floors", "ceilings", *scenarios.SCENARIOS, "peers"]
BROKERS = {"redis": ("127.0.0.1", 6379), "rabbitmq": ("127.0.0.1", 5672)}


class HarnessError(Exception):
    """The bench itself is broken (not an adapter that is not ready)."""


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def summary(name: str, result: dict[str, Any]) -> str:
    keys = [k for k, v in result.items() if isinstance(v, int | float) and k != "n"]
    shown = ", ".join(
        f"{k}={result[k]:.4g}" if isinstance(result[k], float) else f"{k}={result[k]}"
        for k in keys[:8]
    )
    return f"{name}: {shown}, lost={len(result.get('lost', []))}"


BASELINE: dict[str, Path | None] = {"path": None}
"""``--baseline-dir``: every scenario also runs on that checkout's ``app/``, just before."""

QUIET = {"max_busy": 0.25, "within_s": 0.0, "check": 1.0, "budget_s": 240.0}
"""Waiting for a quiet machine: per scenario at most ``within_s``, in all ``budget_s``."""

STRICT = {"on": False}
"""``--quick`` checks the harness (CI): there, any scenario that fails is a harness error
(exit 2), not a figure marked unavailable; a backend missing stays ``unavailable``."""


async def guarded(name: str, run: Any, harness_errors: list[str], critical: bool) -> dict[str, Any]:
    """Run one scenario; an adapter/backend problem becomes ``unavailable: reason``."""
    background = 0.0
    if QUIET["check"]:
        waited = time.monotonic()
        background = await wait_for_quiet(
            QUIET["max_busy"], min(QUIET["within_s"], QUIET["budget_s"])
        )
        QUIET["budget_s"] = max(0.0, QUIET["budget_s"] - (time.monotonic() - waited))
    if background > QUIET["max_busy"]:
        log(f"{name}: the machine is busy ({background:.0%} CPU in use) before the start")
    started = time.monotonic()
    try:
        result = dict(await run())
    except UnavailableError as exc:
        log(f"{name}: unavailable: {exc}")
        return {"unavailable": str(exc)}
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]
        log(f"{name}: failed: {reason}")
        traceback.print_exc(file=sys.stderr)
        if critical or STRICT["on"]:
            harness_errors.append(f"{name}: {reason}")
        return {"unavailable": reason}
    result["wall_seconds"] = round(time.monotonic() - started, 2)
    result["background_busy"] = round(background, 2)
    log(summary(name, result))
    return result


async def run_adapter(
    ctx: Context, kind: str, wanted: list[str], results: dict[str, Any], errors: list[str]
) -> None:
    slot = results["adapters"].setdefault(kind, {})
    reason: str | None = None
    if kind in BROKERS and not reachable(*BROKERS[kind]):
        reason = f"{kind} is not reachable on {BROKERS[kind][0]}:{BROKERS[kind][1]}"
    else:
        try:
            check_adapter_importable(kind)
        except UnavailableError as exc:
            reason = str(exc)
    if reason is not None:
        log(f"{kind}: unavailable: {reason}")
        for name in [*scenarios.SCENARIOS, "ceiling"]:
            if name in wanted or (name == "ceiling" and "ceilings" in wanted):
                target = results["ceilings"] if name == "ceiling" else slot
                target[kind if name == "ceiling" else name] = {"unavailable": reason}
        return
    critical = kind == "builtin"
    if "ceilings" in wanted:
        results["ceilings"][kind] = await guarded(
            f"{kind} raw ceiling", lambda: scenarios.ceiling(ctx, kind), errors, critical
        )
    try:
        for name, scenario in scenarios.SCENARIOS.items():
            if name not in wanted:
                continue
            baseline = BASELINE["path"]
            if baseline is not None:
                # the same scenario on the baseline's app first, then on this one: a
                # same-run A/B, each pair a minute apart on the same machine
                this = HOOKLINE_DIR["path"]
                HOOKLINE_DIR["path"] = baseline
                try:
                    results["baseline"].setdefault(kind, {})[name] = await guarded(
                        f"{kind} {name} (baseline)",
                        lambda scenario=scenario: scenario(ctx, kind),
                        errors,
                        critical,
                    )
                finally:
                    HOOKLINE_DIR["path"] = this
            slot[name] = await guarded(
                f"{kind} {name}",
                lambda scenario=scenario: scenario(ctx, kind),
                errors,
                critical,
            )
    finally:
        shared = ctx.shared.get(kind)
        if shared is not None:
            await scenarios.stop_hookline(ctx, shared, final=True)


async def run_peers(
    ctx: Context, venvs: Path, results: dict[str, Any], errors: list[str], quick: bool
) -> None:
    peers = results["peers"]
    n = ctx.sizes.peer_n
    n_fail = ctx.sizes.peer_failures_n
    if not reachable("127.0.0.1", 6379):
        peers["celery"] = {"all": {"unavailable": "redis is not reachable on 127.0.0.1:6379"}}
        peers["arq"] = {"unavailable": "redis is not reachable on 127.0.0.1:6379"}
        return
    try:
        celery_python = await peer_runner.ensure_venv(venvs, "celery", ctx.processes)
    except Exception as exc:
        peers["celery"] = {"all": {"unavailable": f"venv: {exc}"}}
    else:
        pools = peer_runner.CELERY_POOLS[:1] if quick else peer_runner.CELERY_POOLS
        runs: dict[str, Any] = {}
        for pool, conc in pools:
            runs[f"{pool}-c{conc}"] = await guarded(
                f"celery {pool} -c {conc} drain",
                lambda pool=pool, conc=conc: peer_runner.celery(
                    ctx, celery_python, n, False, pool, conc
                ),
                errors,
                True,
            )
        peers["celery"] = runs
        best = max(
            ((k, r) for k, r in runs.items() if "unavailable" not in r),
            key=lambda kr: kr[1]["rate"],
            default=None,
        )
        if best is not None:
            pool, _, conc = best[0].partition("-c")
            peers["celery_failures"] = await guarded(
                f"celery {best[0]} failures",
                lambda: peer_runner.celery(ctx, celery_python, n_fail, True, pool, int(conc)),
                errors,
                True,
            )
    try:
        arq_python = await peer_runner.ensure_venv(venvs, "arq", ctx.processes)
    except Exception as exc:
        peers["arq"] = {"unavailable": f"venv: {exc}"}
        return
    peers["arq"] = await guarded(
        "arq drain", lambda: peer_runner.arq(ctx, arq_python, n, False), errors, True
    )
    peers["arq_failures"] = await guarded(
        "arq failures", lambda: peer_runner.arq(ctx, arq_python, n_fail, True), errors, True
    )


def read_port(path: Path) -> int:
    text = path.read_text().strip() if path.exists() else ""
    return int(text) if text else 0


async def start_receiver(processes: Processes, workdir: Path) -> ReceiverClient:
    ready = workdir / "receiver.port"
    ready.unlink(missing_ok=True)  # a stale file would name a dead port
    await processes.start("receiver", [PYTHON, "-m", "bench.receiver", "--ready-file", str(ready)])
    for _ in range(200):
        port = read_port(ready)
        if port:
            client = ReceiverClient(port)
            await client.stats()
            return client
        await asyncio.sleep(0.05)
    raise HarnessError(f"the receiver did not start: {processes.log_tail('receiver')}")


async def main_async(args: argparse.Namespace) -> int:
    started = time.monotonic()
    run_id = uuid.uuid4().hex[:8]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    workdir = BENCH / "results" / f"run-{stamp}-{run_id}"
    workdir.mkdir(parents=True, exist_ok=True)
    processes = Processes(workdir)
    sizes = QUICK if args.quick else FULL
    if args.backlog:
        sizes = dataclasses.replace(sizes, backlog_n=args.backlog)
    if args.drain:
        sizes = dataclasses.replace(sizes, drain_n=args.drain)
    QUIET["within_s"] = 0.0 if args.quick else args.wait_quiet
    QUIET["check"] = 0.0 if args.quick else 1.0
    STRICT["on"] = bool(args.quick)
    adapters = [a for a in args.adapters.split(",") if a]
    wanted = [s for s in args.scenarios.split(",") if s]
    unknown = sorted((set(adapters) - set(ALL_ADAPTERS)) | (set(wanted) - set(ALL_SCENARIOS)))
    if unknown:
        log(f"unknown adapter or scenario: {', '.join(unknown)}")
        return 2
    WORKERS["n"] = args.workers
    if args.pinned and args.workers > 1:
        log("--pinned with --workers > 1: every worker would share CPU 0; run unpinned")
        return 2
    if args.pinned:
        problem = pin_cores()
        if problem is not None:
            log(f"--pinned: {problem}")
            return 2
        log("pinned: hookline and the floors on CPU 0, the bench, receiver and peers on CPU 1")
    command = "python -m bench.run " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    results: dict[str, Any] = {
        "command": command.strip(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": "quick" if args.quick else "full",
        "pinned": args.pinned,
        "workers": args.workers,
        "profiled": args.profile,
        "hookline_dir": args.hookline_dir,
        "sizes": sizes.__dict__,
        "adapters": {},
        "baseline": {},
        "baseline_dir": args.baseline_dir,
        "ceilings": {},
        "peers": {},
    }
    errors: list[str] = []
    venvs = Path(args.venvs) if args.venvs else peer_runner.default_venvs()
    try:
        if "peers" in wanted and not args.quick:
            # Built before any measurement, so pip never competes with a timed scenario.
            for peer in ("celery", "arq"):
                with contextlib.suppress(Exception):
                    log(f"preparing the {peer} venv in {venvs}")
                    await peer_runner.ensure_venv(venvs, peer, processes)
        receiver = await start_receiver(processes, workdir)
        ctx = Context(
            processes,
            receiver,
            workdir,
            sizes,
            run_id,
            share_process=args.quick and not args.baseline_dir,
            profile=args.profile,
        )
        if "receiver" in wanted:
            results["receiver"] = await guarded(
                "receiver ceiling", lambda: scenarios.receiver_ceiling(ctx), errors, True
            )
        if "floors" in wanted:
            results["floors"] = await guarded("floors", lambda: floors(ctx), errors, False)
        for kind in adapters:
            await run_adapter(ctx, kind, wanted, results, errors)
        if "peers" in wanted:
            await run_peers(ctx, venvs, results, errors, args.quick)
        results["notes"] = ctx.notes
    except HarnessError as exc:
        errors.append(str(exc))
    finally:
        await processes.stop_all()
    results["seconds"] = round(time.monotonic() - started, 1)
    results["harness_errors"] = errors
    lost = lost_total(results)
    text = render(results, lost, errors)
    print(text)
    write_outputs(workdir, results, text, args.output)
    log(f"details and logs in {workdir}")
    if lost:
        return 1
    return 2 if errors else 0


def write_outputs(workdir: Path, results: dict[str, Any], text: str, output: str | None) -> None:
    (workdir / "results.json").write_text(json.dumps(results, indent=1, default=str))
    if output:
        out = Path(output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
        log(f"wrote {out}")


def busy_scenarios(results: dict[str, Any]) -> list[str]:
    """Scenarios that started while something else used the machine."""
    found: list[str] = []

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            busy = node.get("background_busy")
            if isinstance(busy, float) and busy > QUIET["max_busy"]:
                found.append(f"{prefix} ({busy:.0%})")
            for key, value in node.items():
                walk(f"{prefix} {key}".strip(), value)

    walk("", results)
    return found


def render(results: dict[str, Any], lost: list[str], errors: list[str]) -> str:
    receiver = results.get("receiver") or {}
    sizes = results["sizes"]
    pinned = ", pinned: hookline on CPU 0, the rest on CPU 1" if results.get("pinned") else ""
    if results.get("workers", 1) > 1:
        pinned += f", hookline serve --workers {results['workers']} (Redis, RabbitMQ)"
    command = (
        f"Command: `{results['command']}` ({results['mode']} mode{pinned}), {results['date']}, "
        f"{results['seconds']} s on this machine."
    )
    lines = [
        command,
        "",
        table(results),
        "",
    ]
    lines += floor_lines(results)
    if results.get("baseline"):
        lines += ["", ab_table(results), ""]
    if "rate" in receiver:
        lines.append(
            "Bench receiver alone (raw asyncio client, 32 connections): "
            f"{receiver['rate']:,.0f} requests/s."
        )
    lines.append(
        f"Sizes: drain {sizes['drain_n']:,} x ~1 KB; backlog {sizes['backlog_n']:,}; "
        f"latency {sizes['latency_rate']:,.0f} msg/s for {sizes['latency_seconds']:.0f} s; "
        f"fan-out {sizes['fanout_subs']} x {sizes['fanout_n']:,}; "
        f"failures {sizes['failures_n']:,}; peers: drain {sizes['peer_n']:,}, failures "
        f"{sizes['peer_failures_n']:,}; max_in_flight {sizes['concurrency']}."
    )
    busy = busy_scenarios(results)
    if busy:
        lines.append(
            "WARNING: the machine was busy with other work when these started (figures low): "
            + ", ".join(busy)
        )
    lines += ["", "Targets (issue 5):"]
    if results["mode"] == "quick":
        lines.append("(quick mode: tiny N, figures are not comparable with the targets)")
    if results.get("profiled"):
        lines.append("(--profile: py-spy took CPU from the machine, figures are low)")
    lines += verdicts(results)
    if results.get("pinned"):
        lines += ["", "Targets (issue 12: one hookline process on one pinned core):"]
        lines += verdicts(results, TARGETS_12)
    if any(
        name.startswith("insight") for scen in results.get("adapters", {}).values() for name in scen
    ):
        lines += ["", "Targets (issue 13: the delivery insight log's cost):"]
        lines += verdicts(results, TARGETS_13)
    if errors:
        lines += ["", "HARNESS ERRORS:", *(f"- {e}" for e in errors)]
    if lost:
        lines += [
            "",
            f"!!! INVALID RUN: {len(lost)} MESSAGE(S) LOST !!!",
            *(f"- {item}" for item in lost[:20]),
        ]
    else:
        lines += ["", "No message lost: every accepted message was delivered or dead-lettered."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny N: checks the harness (CI)")
    parser.add_argument("--adapters", default=",".join(ALL_ADAPTERS))
    parser.add_argument(
        "--scenarios",
        default=",".join(ALL_SCENARIOS),
        help=f"comma-separated subset of {','.join(ALL_SCENARIOS)}",
    )
    parser.add_argument("--output", help="also write the markdown here")
    parser.add_argument(
        "--backlog", type=int, default=0, help="messages of the backlog scenario (default 100,000)"
    )
    parser.add_argument(
        "--drain",
        type=int,
        default=0,
        help="messages of the drain scenarios (drain, insight, ordered; default 50,000)",
    )
    parser.add_argument(
        "--hookline-dir",
        help="run hookline's app/ from this checkout instead (e.g. a worktree with a fix)",
    )
    parser.add_argument(
        "--baseline-dir",
        help="also run every scenario on this checkout's app/ just before (same-run A/B; "
        "e.g. git archive main app | tar -x -C DIR), with a table of ratios",
    )
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the hookline process in timed phases"
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=120.0,
        help="seconds to wait, before each scenario, for other CPU use to fall under 25%%",
    )
    parser.add_argument("--venvs", help="where the peers' venvs live (default: user cache)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="hookline serve --workers N (Redis and RabbitMQ; builtin stays at 1)",
    )
    parser.add_argument(
        "--pinned",
        action="store_true",
        help="hookline and the floors on CPU 0 (taskset), everything else on CPU 1",
    )
    args = parser.parse_args()
    if args.hookline_dir:
        HOOKLINE_DIR["path"] = Path(args.hookline_dir).resolve()
    if args.baseline_dir:
        BASELINE["path"] = Path(args.baseline_dir).resolve()
    code = 0

    async def runner() -> None:
        nonlocal code
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            # Cancel instead of dying, so every started process is stopped by its pid.
            loop.add_signal_handler(signum, task.cancel)  # type: ignore[union-attr]
        try:
            code = await main_async(args)
        except asyncio.CancelledError:
            log("interrupted: processes stopped")
            code = 2

    run_loop(runner())
    sys.exit(code)


if __name__ == "__main__":
    main()
