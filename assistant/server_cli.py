"""``hearth serve``: run the Hearth server until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from typing import Any

from assistant.config import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    AssistantConfigError,
    parse_assistant_settings,
)
from devices.registry import ConfigError, HomeConfig, load_config, load_demo_config

logger = logging.getLogger(__name__)

TOKEN_ENV = "HEARTH_TOKEN"


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="run the assistant server (demo home with an embedded broker when no --config)",
        description=(
            "Serve the WebSocket API, the browser page and /metrics. Without --config: the "
            f"demo home, an embedded MQTT broker and simulated devices on {DEFAULT_HOST}:"
            f"{DEFAULT_PORT}."
        ),
    )
    p.add_argument("--config", metavar="FILE", help="home config (YAML); default: the demo home")
    p.add_argument("--host", help=f"address to listen on (default {DEFAULT_HOST})")
    p.add_argument("--port", type=int, help=f"port (default {DEFAULT_PORT}; 0 picks one)")
    p.add_argument(
        "--token",
        help=f"require this access token (default: ${TOKEN_ENV} or the config's token_env)",
    )
    p.add_argument("--tls-cert", metavar="PEM", help="certificate chain: serve wss:// and https://")
    p.add_argument("--tls-key", metavar="PEM", help="private key for --tls-cert")
    p.add_argument("--audit-log", metavar="FILE", help="append one JSON line per utterance")
    p.add_argument("--mqtt-url", metavar="URL", help="broker URL, overriding the config")
    p.add_argument("--model", help="Whisper model directory or name (default: bundled tiny.en)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="ASR device")
    p.add_argument("--compute-type", help="CTranslate2 compute type (int8, float16, ...)")
    p.add_argument("--threads", type=int, help="ASR CPU threads")
    p.add_argument("--no-audio", action="store_true", help="text only: load no speech models")
    p.add_argument(
        "--wyoming",
        metavar="URI",
        help="also serve the Wyoming protocol for Home Assistant at tcp://HOST:PORT "
        "(no authentication; see docs/homeassistant.md)",
    )
    p.add_argument(
        "--wyoming-zeroconf",
        nargs="?",
        const="",
        metavar="NAME",
        help="announce the Wyoming server over zeroconf (_wyoming._tcp) so Home Assistant "
        "discovers it, as NAME (default hearth-<host name>); on by default when the Wyoming "
        "address is not loopback",
    )
    p.add_argument(
        "--no-wyoming-zeroconf",
        action="store_true",
        help="never announce the Wyoming server over zeroconf",
    )
    p.set_defaults(func=_serve)


def _load(args: argparse.Namespace) -> tuple[HomeConfig, Any]:
    config = load_config(args.config) if args.config else load_demo_config()
    settings = parse_assistant_settings(config.assistant)
    asr = settings.asr.model_copy(
        update={
            k: v
            for k, v in {
                "model": args.model,
                "device": args.device,
                "compute_type": args.compute_type,
                "threads": args.threads,
            }.items()
            if v is not None
        }
    )
    settings = settings.with_overrides(
        **{
            "server.host": args.host,
            "server.port": args.port,
            "server.tls_cert": args.tls_cert,
            "server.tls_key": args.tls_key,
            "audit.path": args.audit_log,
            "token": args.token or os.environ.get(TOKEN_ENV) or None,
            "asr": asr.model_dump(),
            "audio": False if args.no_audio else None,
            "wyoming.uri": args.wyoming,
            "wyoming.zeroconf": False if args.no_wyoming_zeroconf
            else True if args.wyoming_zeroconf is not None else None,
            "wyoming.zeroconf_name": args.wyoming_zeroconf or None,
        }
    )
    return config, settings


def _raise_fd_limit(wanted: int) -> None:
    """Each connection is a file descriptor; the usual soft limit (1024) is below what the
    connection limits allow."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _serve(args: argparse.Namespace) -> int:
    try:
        config, settings = _load(args)
    except (ConfigError, AssistantConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from assistant.server import InsecureBindError, check_exposure

    try:
        cfg = settings.server
        check_exposure(cfg.host, settings.token, cfg.allow_unauthenticated)
    except InsecureBindError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if settings.wyoming.uri is not None:
        error = _check_wyoming(settings.wyoming)
        if error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    # Connections, plus model files, the broker, sockets to it, and some slack.
    _raise_fd_limit(settings.limits.max_connections + 256)
    try:
        return asyncio.run(_run(config, settings, args.mqtt_url))
    except KeyboardInterrupt:
        return 130


def _check_wyoming(cfg: Any) -> str | None:
    """A bad ``wyoming.uri``, or a host other than loopback without ``allow_remote``."""
    import ipaddress

    from assistant.wyoming_server import WyomingConfigError, parse_uri

    try:
        host, _port = parse_uri(cfg.uri)
    except WyomingConfigError as e:
        return str(e)
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not cfg.allow_remote:
        return (
            f"wyoming: {host} is not a loopback address and Wyoming has no authentication; "
            "set assistant.wyoming.allow_remote: true to serve it on the network"
        )
    return None


async def _run(config: HomeConfig, settings: Any, mqtt_url: str | None) -> int:
    from assistant.app import Hearth
    from assistant.audio.errors import ModelLoadError
    from devices.actions import DeviceError
    from intents.model_tier import ModelTierError

    hearth = Hearth(config, settings, mqtt_url=mqtt_url)
    try:
        await hearth.start()
    except (ModelLoadError, ModelTierError, DeviceError, ConfigError, OSError) as e:
        print(f"error: cannot start: {e}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        server = hearth.server()
        try:
            await server.start()
        except OSError as e:
            print(f"error: cannot listen on {settings.server.host}: {e}", file=sys.stderr)
            return 1
        auth = " (token required)" if settings.token else ""
        print(f"Hearth ready: {server.url}  (browser: {server.http_url}){auth}", flush=True)
        if settings.wyoming.uri is not None:
            try:
                wyoming = await hearth.start_wyoming(
                    settings.wyoming.uri,
                    zeroconf=settings.wyoming.zeroconf,
                    zeroconf_name=settings.wyoming.zeroconf_name,
                )
            except OSError as e:
                print(f"error: cannot listen on {settings.wyoming.uri}: {e}", file=sys.stderr)
                return 1
            print(f"Wyoming ready: {wyoming.uri}  (no authentication)", flush=True)
            if wyoming.announcement is not None:
                a = wyoming.announcement
                print(f"Wyoming announced over zeroconf: {a.name!r} (_wyoming._tcp) at "
                      f"{', '.join(a.plan.addresses)} port {a.port}", flush=True)
            elif wyoming.zeroconf_error is not None:
                print(f"warning: {wyoming.zeroconf_error}", file=sys.stderr, flush=True)
        await stop.wait()
        logger.info("signal received: shutting down")
        await server.shutdown()
    finally:
        await hearth.stop()
    return 0
