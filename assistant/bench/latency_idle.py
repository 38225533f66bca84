"""The idle part of ``hearth bench latency`` (:mod:`assistant.bench.latency`): hold
``--idle-connections`` idle sessions and measure the server's CPU over ``--idle-seconds``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shlex
import time
from pathlib import Path
from typing import Any

import yaml

from assistant.bench import latency_report
from assistant.bench.latency_runner import (
    CpuWindow,
    HearthServer,
    ProcessMonitor,
    machine_info,
    open_idle,
)
from assistant.bench.latency_variants import _parse_sets, apply_overrides


def run_idle(
    args: argparse.Namespace,
    workdir: Path,
    base_config: dict[str, Any] | None,
    broker_url: str | None,
) -> dict[str, Any]:
    """Open ``--idle-connections`` idle sessions; the server's CPU over ``--idle-seconds``."""
    server: HearthServer | None = None
    pid = args.server_pid
    url = args.url
    info: dict[str, Any] = {}
    if url is None:
        assert base_config is not None and broker_url is not None
        overrides = {"mqtt.url": broker_url, **dict(_parse_sets(args.sets))}
        cfg_path = workdir / "config-idle.yaml"
        cfg_path.write_text(
            yaml.safe_dump(
                apply_overrides(base_config, overrides), sort_keys=False, allow_unicode=True
            ),
            encoding="utf-8",
        )
        server = HearthServer(cfg_path, workdir / "server-idle.log", args.server_args)
        start = server.start()
        url, pid = server.url, server.pid
        info = {
            "command": shlex.join(server.command),
            "startup_to_ready_s": None if start.healthz_s is None else round(start.healthz_s, 2),
        }
    try:
        monitor = ProcessMonitor(pid) if pid else None
        if monitor:
            monitor.start()

        async def hold() -> tuple[float, CpuWindow | None]:
            t_open = time.monotonic()
            conns = await open_idle(url, args.idle_connections)
            open_s = time.monotonic() - t_open
            await asyncio.sleep(2.0)  # handshakes and session set-up are not idle work
            c0 = monitor.cpu_seconds() if monitor else 0.0
            t0 = time.monotonic()
            await asyncio.sleep(args.idle_seconds)
            window = (
                CpuWindow(monitor.cpu_seconds() - c0, time.monotonic() - t0) if monitor else None
            )
            for ws in conns:
                with contextlib.suppress(Exception):
                    await ws.close()
            return open_s, window

        open_s, window = asyncio.run(hold())
        peak = monitor.stop() if monitor else None
    finally:
        if server is not None:
            server.stop()
    cores = machine_info()["logical_cores"] or 1
    out = {
        "connections": args.idle_connections,
        "open_s": round(open_s, 2),
        "server": info,
        "server_cpu": window.to_dict(cores) if window else None,
        "server_peak_rss_mb": None if peak is None else round(peak / 2**20, 1),
    }
    pct = window.to_dict(cores)["percent_of_machine"] if window else None
    limit = latency_report.TARGETS["idle_200_cpu_percent"]
    out["targets"] = {
        "idle_cpu_percent_of_machine": {
            "value": pct,
            "target": limit,
            "met": None if pct is None else pct <= limit,
        },
    }
    start_s = info.get("startup_to_ready_s")
    if start_s is not None:
        out["targets"]["startup_s"] = {
            "value": start_s,
            "target": latency_report.TARGETS["startup_s"],
            "met": start_s <= latency_report.TARGETS["startup_s"],
        }
    return out
