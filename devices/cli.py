"""``hearth check-config``, ``hearth import-discovery`` and ``hearth simulate``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from devices.actions import BrokerUnavailable, PublishFailed
from devices.registry import ConfigError, SectionCheck, config_problems, load_config


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("check-config", help="validate a home config file and say what is wrong")
    p.add_argument("file")
    p.set_defaults(func=_check_config)

    p = sub.add_parser(
        "import-discovery",
        help="print YAML devices built from retained Home Assistant MQTT discovery configs",
    )
    p.add_argument("--url", required=True, help="broker, e.g. mqtt://192.168.1.10:1883")
    p.add_argument("--prefix", default="homeassistant", help="discovery prefix")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the broker")
    p.add_argument("--username", default=None)
    p.add_argument(
        "--password-env", default=None, help="name of the environment variable with the password"
    )
    p.add_argument("--ca-file", default=None, help="CA certificate for mqtts://")
    p.set_defaults(func=_import_discovery)

    p = sub.add_parser(
        "simulate",
        help="run simulated devices of a home config on a broker (demo, benchmarks)",
    )
    p.add_argument("--url", required=True, help="broker, e.g. mqtt://127.0.0.1:1883")
    p.add_argument("--config", default=None, help="home config (default: the demo home)")
    p.add_argument("--silent", action="append", default=[], help="device id that never answers")
    p.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    p.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    p.add_argument("--username", default=None, help="MQTT user of the simulated devices")
    p.add_argument(
        "--password-env", default=None, help="name of the environment variable with the password"
    )
    p.set_defaults(func=_simulate)


def _section_checks() -> dict[str, SectionCheck]:
    """The assistant package validates its own section; imported here, lazily, only so that
    ``check-config`` reports its problems too (this package never needs it otherwise)."""
    try:
        from assistant.config import assistant_problems
    except ModuleNotFoundError:  # the devices package on its own
        return {}
    return {"assistant": assistant_problems}


def _check_config(args: argparse.Namespace) -> int:
    path = str(args.file)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        print(f"{path}: cannot read: {e.strerror}", file=sys.stderr)
        return 2
    cfg, problems = config_problems(text, path=path, section_checks=_section_checks())
    if problems or cfg is None:
        for problem in problems:
            print(problem, file=sys.stderr)
        n = len(problems)
        print(f"{path}: {n} problem{'s' if n != 1 else ''}", file=sys.stderr)
        return 2
    print(
        f"{args.file}: ok ({len(cfg.devices)} devices, {len(cfg.areas)} areas, "
        f"{len(cfg.floors)} floors, {len(cfg.scenes)} scenes)"
    )
    return 0


def _import_discovery(args: argparse.Namespace) -> int:
    from devices.discovery import devices_to_yaml, discover
    from devices.mqtt import MqttClient, unique_client_id

    password = None
    if args.password_env:
        password = os.environ.get(args.password_env)
        if password is None:
            print(f"error: environment variable {args.password_env} is not set", file=sys.stderr)
            return 2

    async def run() -> str:
        client = MqttClient(
            args.url,
            client_id=unique_client_id("hearth-import"),
            username=args.username,
            password=password,
            ca_file=args.ca_file,
            connect_timeout_s=args.timeout,
        )
        await client.connect()
        try:
            devices = await discover(client, prefix=args.prefix, within=args.timeout)
        finally:
            await client.close()
        print(f"# {len(devices)} devices from {client.url} ({args.prefix}/...)", file=sys.stderr)
        return devices_to_yaml(devices)

    try:
        text = asyncio.run(run())
    except (BrokerUnavailable, PublishFailed, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from devices.registry import load_demo_config
    from devices.simulators import SimulatedHome

    try:
        cfg = load_config(args.config) if args.config else load_demo_config()
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    unknown = sorted(set(args.silent) - {d.id for d in cfg.devices})
    if unknown:
        print(f"error: unknown device(s) {', '.join(unknown)}", file=sys.stderr)
        return 2

    url = args.url
    if args.username is not None:
        from urllib.parse import quote

        password = ""
        if args.password_env:
            password = os.environ.get(args.password_env, "")
            if not password:
                var = args.password_env
                print(f"error: environment variable {var} is not set", file=sys.stderr)
                return 2
        scheme, sep, rest = url.partition("://")
        cred = quote(args.username, safe="") + (f":{quote(password, safe='')}" if password else "")
        url = f"{scheme}{sep}{cred}@{rest.rsplit('@', 1)[-1]}" if sep else url

    async def run() -> None:
        home = SimulatedHome(cfg, url, silent=set(args.silent), latency_s=args.latency)
        await home.start()
        print(f"simulating {len(cfg.devices)} devices on {home.mqtt.url}", file=sys.stderr)
        try:
            if args.duration is None:
                await asyncio.Event().wait()
            else:
                await asyncio.sleep(args.duration)
        finally:
            await home.stop()

    try:
        asyncio.run(run())
    except (BrokerUnavailable, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
