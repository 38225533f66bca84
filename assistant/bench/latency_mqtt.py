"""The benchmark's independent MQTT subscriber, run as its own process.

``python -m assistant.bench.latency_mqtt --host H --port P --out FILE`` subscribes to ``#`` on
its own connection, prints ``ready`` once the broker granted the subscription, and appends one
JSON line ``{"t": <time.monotonic()>, "topic": ..., "payload": ...}`` per message to ``FILE``
until it gets SIGTERM or SIGINT.

Why a process and not a thread of the benchmark: with 50 streams the benchmark's event loop keeps
the GIL busy, and a paho thread waiting for the GIL would stamp arrivals late. ``time.monotonic``
is ``CLOCK_MONOTONIC`` on Linux, one clock for all processes, so these stamps compare directly
with the client's send times.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from typing import Any, TextIO

#: Fields written per arrival; the payload is decoded as UTF-8 with replacement.
_TOPIC_FILTER = "#"


def subscribe(
    host: str,
    port: int,
    out: TextIO,
    stop: threading.Event,
    username: str | None = None,
    password: str | None = None,
) -> int:
    """Record every message until ``stop`` is set. Returns a process exit status."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    ready = threading.Event()
    lock = threading.Lock()
    failed: list[str] = []

    def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            failed.append(str(reason))
            ready.set()
            return
        client.subscribe(_TOPIC_FILTER, qos=0)

    def on_subscribe(client: Any, userdata: Any, mid: Any, reasons: Any, props: Any) -> None:
        ready.set()

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        t = time.monotonic()  # first thing: the stamp is the measurement
        if msg.retain:
            return  # retained state from before the run, not a command arriving now
        line = json.dumps(
            {"t": t, "topic": msg.topic, "payload": msg.payload.decode("utf-8", "replace")}
        )
        with lock:
            out.write(line + "\n")

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"hearth-bench-{time.time_ns()}")
    if username:
        client.username_pw_set(username, password)
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(host, port, keepalive=30)
    client.loop_start()
    try:
        if not ready.wait(10.0) or failed:
            print(f"error: could not subscribe: {failed or 'timeout'}", flush=True)
            return 1
        print("ready", flush=True)
        while not stop.wait(0.2):
            with lock:
                out.flush()
    finally:
        client.disconnect()
        client.loop_stop()
        with lock:
            out.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--username")
    p.add_argument("--password-env", help="environment variable holding the password")
    args = p.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    password = None
    if args.password_env:
        import os

        password = os.environ.get(args.password_env)
    with open(args.out, "a", encoding="utf-8") as out:
        return subscribe(args.host, args.port, out, stop, args.username, password)


if __name__ == "__main__":
    sys.exit(main())
