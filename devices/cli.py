"""``hearth check-config`` and ``hearth import-discovery``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from devices.actions import BrokerUnavailable, PublishFailed
from devices.registry import ConfigError, load_config


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


def _check_config(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.file)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
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
