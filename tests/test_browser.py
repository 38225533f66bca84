"""The browser page in headless Chromium, driven over the Chrome DevTools Protocol.

Chromium's fake microphone plays a piper-synthesized WAV ("turn on the kitchen light" and then
silence, looped); the page captures it with its AudioWorklet, streams 16 kHz PCM to a real
Hearth server, and the simulated kitchen light must turn on — seen both by the server (the
device state) and on the page (its device panel, read through ``Runtime.evaluate``).

No selenium or playwright: a small CDP client on the ``websockets`` library is enough.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import tempfile
import time
import urllib.request
import wave
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from assistant.client import HearthClient
from tests.server_fixtures import MqttRecorder, ServerThread

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Seconds to wait for Chromium to write its DevTools port file.
CHROMIUM_START_TIMEOUT_S = 30.0


def find_chromium() -> str | None:
    """The Chromium executable: $HEARTH_CHROMIUM, else the first browser on PATH."""
    given = os.environ.get("HEARTH_CHROMIUM")
    if given:
        return given if Path(given).exists() else None
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def chromium_flags(user_data_dir: Path, fake_audio: Path | None) -> list[str]:
    """Flags for a headless, offline, permission-free Chromium with a fake microphone."""
    flags = [
        "--headless",
        "--no-sandbox",  # containers and CI runners lack the user namespaces it needs
        "--disable-gpu",
        "--disable-dev-shm-usage",  # CI containers often have a 64 MB /dev/shm
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        "--no-first-run",
        "--no-default-browser-check",
        "--mute-audio",
        "--window-size=1280,900",
        "--use-fake-ui-for-media-stream",  # grant the microphone without a prompt
        "--use-fake-device-for-media-stream",
        "--autoplay-policy=no-user-gesture-required",  # AudioContext starts without a click
        f"--user-data-dir={user_data_dir}",
        "--remote-debugging-port=0",  # any free port, written to DevToolsActivePort
        "--remote-allow-origins=*",
    ]
    if fake_audio is not None:
        flags.append(f"--use-file-for-fake-audio-capture={fake_audio}")
    return flags


class CdpError(Exception):
    """A DevTools command failed or the browser went away."""


@dataclass
class Cdp:
    """A minimal Chrome DevTools Protocol client over one browser-level WebSocket.

    Commands for a page go through a flattened target session (``Target.attachToTarget`` with
    ``flatten``), so a single socket carries everything. Console messages and exceptions of the
    page are kept in :attr:`console` for failure messages.
    """

    ws: ClientConnection
    console: list[str] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _pending: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _reader: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._reader = asyncio.create_task(self._read(), name="cdp-reader")

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                msg = json.loads(raw)
                if "id" in msg:
                    fut = self._pending.pop(msg["id"], None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
                    continue
                method = msg.get("method")
                params = msg.get("params", {})
                if method == "Runtime.consoleAPICalled":
                    text = " ".join(
                        str(a.get("value", a.get("description", ""))) for a in params["args"]
                    )
                    self.console.append(f"console.{params['type']}: {text}")
                elif method == "Runtime.exceptionThrown":
                    details = params["exceptionDetails"]
                    desc = details.get("exception", {}).get("description") or details["text"]
                    self.console.append(f"exception: {desc}")
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(CdpError("DevTools connection closed"))

    async def call(
        self, method: str, params: dict[str, Any] | None = None, session_id: str | None = None
    ) -> dict[str, Any]:
        msg_id = next(self._ids)
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session_id is not None:
            msg["sessionId"] = session_id
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = fut
        await self.ws.send(json.dumps(msg))
        reply = await asyncio.wait_for(fut, 30)
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader


@dataclass
class Page:
    """One tab, attached through a flattened CDP session."""

    cdp: Cdp
    session_id: str

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.cdp.call(method, params, self.session_id)

    async def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript in the page and return its JSON value (promises awaited)."""
        result = await self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise CdpError(f"{expression!r}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout_s: float, interval_s: float = 0.2) -> Any:
        """Poll ``expression`` until it is truthy; return its value. ``TimeoutError`` after
        ``timeout_s`` (timeouts are limits on waiting, not timing assertions)."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"page never satisfied {expression!r}")
            await asyncio.sleep(interval_s)

    async def screenshot(self, path: Path) -> Path:
        data = await self.call("Page.captureScreenshot", {"format": "png"})
        await asyncio.to_thread(path.write_bytes, base64.b64decode(data["data"]))
        return path


async def stop_process_group(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM Chromium's process group (browser, renderers, GPU and audio helpers), wait for
    the browser, then SIGKILL whatever of the group is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        async with asyncio.timeout(10):
            await proc.wait()
    except TimeoutError:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    await proc.wait()


@contextlib.asynccontextmanager
async def chromium(fake_audio: Path | None = None) -> AsyncIterator[Cdp]:
    """Start headless Chromium with an empty profile; yield a connected :class:`Cdp`."""
    exe = find_chromium()
    if exe is None:
        raise RuntimeError("chromium is not installed")
    # Renderer processes may still be writing to the profile for a moment after the browser
    # exits; a leftover file in a tmp dir must not fail the test.
    with tempfile.TemporaryDirectory(prefix="hearth-chromium-", ignore_cleanup_errors=True) as tmp:
        profile = Path(tmp)
        proc = await asyncio.create_subprocess_exec(
            exe,
            *chromium_flags(profile, fake_audio),
            "about:blank",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # its own process group: renderers end with it
        )
        try:
            port_file = profile / "DevToolsActivePort"
            deadline = time.monotonic() + CHROMIUM_START_TIMEOUT_S
            # Chromium writes "port\n/devtools/browser/<id>" once it listens.
            while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
                if proc.returncode is not None:
                    raise RuntimeError(f"chromium exited with {proc.returncode}")
                if time.monotonic() > deadline:
                    raise TimeoutError("chromium did not open its DevTools port")
                await asyncio.sleep(0.1)
            port, path = port_file.read_text().splitlines()[:2]
            ws = await connect(f"ws://127.0.0.1:{port}{path}", max_size=64 * 1024 * 1024)
            cdp = Cdp(ws)
            cdp.start()
            try:
                yield cdp
            finally:
                await cdp.close()
        finally:
            await stop_process_group(proc)


async def open_page(cdp: Cdp, url: str) -> Page:
    """Open ``url`` in a new tab and wait until its document has loaded."""
    target = await cdp.call("Target.createTarget", {"url": "about:blank"})
    attached = await cdp.call(
        "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
    )
    page = Page(cdp, attached["sessionId"])
    await page.call("Runtime.enable")
    await page.call("Page.enable")
    await page.call("Page.navigate", {"url": url})
    await page.wait_for("document.readyState === 'complete'", timeout_s=30)
    return page


# -- the tests ---------------------------------------------------------------------------------

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        find_chromium() is None, reason="chromium is not installed (apt-get install chromium)"
    ),
]

KITCHEN_SET = "zigbee2mqtt/kitchen_light/set"
KITCHEN_LIGHT_ON = (
    "document.querySelector('[data-device-id=\"kitchen_light\"]')?.dataset.on === 'true'"
)
PAGE_STATE = (
    "JSON.stringify({ws: hearthPage.wsState, mic: hearthPage.micState, "
    "framesSent: hearthPage.framesSent, framesDropped: hearthPage.framesDropped, "
    "captureRate: hearthPage.captureRate, lastError: hearthPage.lastError, "
    "events: hearthPage.events.map(e => e.type)})"
)


async def describe_failure(page: Page) -> str:
    """Page state and console output, for assertion messages."""
    try:
        state = await page.evaluate(PAGE_STATE)
    except Exception as e:  # the page may be what failed
        state = f"<unavailable: {e}>"
    return f"page state: {state}\nconsole:\n" + "\n".join(page.cdp.console)


def write_mic_wav(path: Path, text: str) -> Path:
    """Piper speech at 16 kHz with silence around it. Chromium loops the file, so the trailing
    silence must be long enough for the server's endpointer to end each repetition."""
    from tests.speech import synth, with_silence

    audio = with_silence(synth(text, rate=16000), 500, 2500)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(audio.astype("<i2").tobytes())
    return path


def server_device_state(http_url: str, device_id: str) -> dict[str, Any] | None:
    """The device's state as the server reports it on ``/api/devices``."""
    with urllib.request.urlopen(http_url + "api/devices", timeout=10) as resp:
        devices = json.load(resp)["devices"]
    for d in devices:
        if d["id"] == device_id:
            state: dict[str, Any] | None = d["state"]
            return state
    raise AssertionError(f"{device_id} missing from /api/devices")


@pytest.mark.slow
async def test_spoken_command_turns_on_the_light(
    hearth_server: ServerThread, mqtt_recorder: MqttRecorder, tmp_path: Path
) -> None:
    # The session's server is shared: start from a known state, light off.
    async with HearthClient(hearth_server.url) as client:
        assert (await client.say("turn off the kitchen light")).ok
    state = await asyncio.to_thread(server_device_state, hearth_server.http_url, "kitchen_light")
    assert state is not None and state["state"] == "off"

    mic = await asyncio.to_thread(write_mic_wav, tmp_path / "mic.wav", "turn on the kitchen light")
    async with chromium(fake_audio=mic) as cdp:
        page = await open_page(cdp, hearth_server.http_url + "?autostart=1")
        try:
            await page.wait_for(KITCHEN_LIGHT_ON, timeout_s=60)
            # Let the utterance's last event (metrics) reach the log before looking at it.
            await page.wait_for("hearthPage.events.some(e => e.type === 'metrics')", timeout_s=30)
        except TimeoutError as e:
            await page.screenshot(tmp_path / "page.png")
            raise AssertionError(f"{e}\n{await describe_failure(page)}") from None
        shot = await page.screenshot(tmp_path / "page.png")
        events: list[dict[str, Any]] = await page.evaluate("hearthPage.events")
        page_state = json.loads(await page.evaluate(PAGE_STATE))
        card = await page.evaluate(
            "document.querySelector('[data-device-id=\"kitchen_light\"] .state').textContent"
        )

    # The page captured the fake microphone and streamed it.
    assert page_state["mic"] == "on" and page_state["framesSent"] > 0, page_state
    assert page_state["captureRate"] in (44100, 48000, 16000)
    # The server heard the words and confirmed the action...
    transcripts = [e["text"].lower() for e in events if e["type"] == "transcript.final"]
    assert any("kitchen" in t for t in transcripts), transcripts
    confirmed = [
        e
        for e in events
        if e["type"] == "action" and e["device_id"] == "kitchen_light" and e["final"]
    ]
    assert confirmed and confirmed[0]["status"] == "confirmed", events
    # ...the command is on the broker, seen by an independent subscriber...
    payload = await asyncio.to_thread(mqtt_recorder.wait_for, KITCHEN_SET, '"ON"')
    assert json.loads(payload)["state"] == "ON"
    # ...the server's device state says on, and so does the page.
    state = await asyncio.to_thread(server_device_state, hearth_server.http_url, "kitchen_light")
    assert state is not None and state["state"] == "on"
    assert card.startswith("on"), card
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank image


async def test_text_box_command(
    text_server_factory: Callable[..., ServerThread], tmp_path: Path
) -> None:
    server = text_server_factory()
    async with chromium() as cdp:
        page = await open_page(cdp, server.http_url)
        try:
            await page.wait_for("hearthPage.wsState === 'open'", timeout_s=30)
            # The device panel is filled from /api/devices.
            names = await page.wait_for(
                "[...document.querySelectorAll('[data-device-id]')].map(e => e.dataset.deviceId)",
                timeout_s=30,
            )
            assert {"kitchen_light", "coffee_maker", "thermostat"} <= set(names)
            await page.evaluate(
                "(() => { const i = document.getElementById('text-input');"
                " i.value = 'turn on the coffee maker';"
                " document.getElementById('text-form').requestSubmit(); })()"
            )
            await page.wait_for(
                "document.querySelector('[data-device-id=\"coffee_maker\"]')"
                "?.dataset.on === 'true'",
                timeout_s=30,
            )
            log = await page.wait_for(
                "[...document.querySelectorAll('#log li')].map(li => li.textContent)"
                ".find(t => t.includes('coffee maker: confirmed'))",
                timeout_s=30,
            )
        except (TimeoutError, AssertionError) as e:
            await page.screenshot(tmp_path / "page.png")
            raise AssertionError(f"{e}\n{await describe_failure(page)}") from None
        assert "action" in log
        result = await page.evaluate("document.getElementById('result').textContent")
        assert "coffee maker: confirmed" in result
        await page.screenshot(tmp_path / "page.png")


#: Renders a tone through the page's AudioWorklet in an OfflineAudioContext at the given rate
#: and measures what comes out at 16 kHz: sample count, RMS and zero-crossing frequency.
WORKLET_PROBE = """
(async (rate, freq) => {
  const seconds = 1;
  const ctx = new OfflineAudioContext({numberOfChannels: 1, length: rate * seconds,
    sampleRate: rate});
  await ctx.audioWorklet.addModule('worklet.js');
  const node = new AudioWorkletNode(ctx, 'pcm16-capture',
    {numberOfInputs: 1, numberOfOutputs: 0, channelCount: 1, channelCountMode: 'explicit'});
  const chunks = [];
  node.port.onmessage = (e) => chunks.push(new Int16Array(e.data.pcm));
  const osc = new OscillatorNode(ctx, {frequency: freq});
  const gain = new GainNode(ctx, {gain: 0.5});
  osc.connect(gain).connect(node);
  osc.start();
  await ctx.startRendering();
  await new Promise((r) => setTimeout(r, 200));  // let the last port messages arrive
  const n = chunks.reduce((a, c) => a + c.length, 0);
  const pcm = new Int16Array(n);
  let off = 0;
  for (const c of chunks) { pcm.set(c, off); off += c.length; }
  const body = pcm.subarray(1600);  // skip the filter's start-up (100 ms)
  let sq = 0, crossings = 0;
  for (let i = 0; i < body.length; i++) {
    sq += (body[i] / 32768) ** 2;
    if (i > 0 && (body[i - 1] < 0) !== (body[i] < 0)) crossings++;
  }
  return {samples: n, rms: Math.sqrt(sq / body.length),
    freq: crossings / 2 / (body.length / 16000)};
})
"""


@pytest.mark.parametrize("rate", [44100, 48000])
async def test_worklet_resamples_to_16k(
    text_server_factory: Callable[..., ServerThread], rate: int
) -> None:
    server = text_server_factory()
    async with chromium() as cdp:
        page = await open_page(cdp, server.http_url)
        try:
            speech_band = await page.evaluate(f"{WORKLET_PROBE}({rate}, 1000)")
            above_nyquist = await page.evaluate(f"{WORKLET_PROBE}({rate}, 11000)")
        except CdpError as e:
            raise AssertionError(f"{e}\n{await describe_failure(page)}") from None
    # One second in, one second out: 16000 samples, give or take the last partial frame.
    assert 16000 - 320 <= speech_band["samples"] <= 16000, speech_band
    # A 1 kHz tone at half scale keeps its level (RMS 0.5/sqrt 2) and its pitch.
    assert speech_band["rms"] == pytest.approx(0.5 / 2**0.5, rel=0.05), speech_band
    assert speech_band["freq"] == pytest.approx(1000, rel=0.02), speech_band
    # 11 kHz cannot be represented at 16 kHz; without the low-pass it would alias to 5 kHz
    # at full level. The filter must remove it (at least 30 dB down).
    assert above_nyquist["rms"] < speech_band["rms"] * 10 ** (-30 / 20), above_nyquist


#: Collects Content-Security-Policy violations from the first moment of every document
#: (DevTools scripts are not subject to the page's policy).
CSP_PROBE = (
    "window.__csp = []; document.addEventListener('securitypolicyviolation', "
    "(e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));"
)
LOGIN_SHOWN = (
    "window.hearthPage && hearthPage.login && document.getElementById('login')"
    " && !document.getElementById('login').hidden"
    " && document.getElementById('main').hidden"
)
DEVICE_IDS = "[...document.querySelectorAll('[data-device-id]')].map(e => e.dataset.deviceId)"


async def login(page: Page, token: str) -> None:
    """Type ``token`` into the page's login form and submit it, as a user would."""
    await page.evaluate(
        "((t) => { const i = document.getElementById('token-input'); i.value = t;"
        f" document.getElementById('login-form').requestSubmit(); }})({json.dumps(token)})"
    )


async def test_page_login_with_the_token(
    text_server_factory: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """With a token configured the page asks for it, refuses a wrong one, and with the right
    one connects and shows the devices; the token stays out of the address, survives a reload
    of the tab (sessionStorage) and nothing the page needs is blocked by its policy."""
    token = "s3cret"
    server = text_server_factory(token=token)
    async with chromium() as cdp:
        target = await cdp.call("Target.createTarget", {"url": "about:blank"})
        attached = await cdp.call(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        page = Page(cdp, attached["sessionId"])
        await page.call("Runtime.enable")
        await page.call("Page.enable")
        await page.call("Page.addScriptToEvaluateOnNewDocument", {"source": CSP_PROBE})
        try:
            await page.call("Page.navigate", {"url": server.http_url})
            await page.wait_for(LOGIN_SHOWN, timeout_s=30)
            status = await page.evaluate("document.getElementById('conn').textContent")
            assert "token required" in status.lower()
            assert await page.evaluate("hearthPage.sessionId") is None

            await login(page, "wrong-token")
            message = await page.wait_for(
                "document.getElementById('login-error').textContent", timeout_s=30
            )
            assert "not accepted" in message
            assert await page.evaluate(LOGIN_SHOWN)
            assert await page.evaluate("sessionStorage.getItem('hearth.token')") is None

            await login(page, token)
            await page.wait_for("hearthPage.sessionId && hearthPage.wsState === 'open'", 30)
            names = await page.wait_for(DEVICE_IDS, timeout_s=30)
            assert {"kitchen_light", "front_door_lock", "thermostat"} <= set(names)
            assert not await page.evaluate("hearthPage.login")
            assert await page.evaluate("sessionStorage.getItem('hearth.token')") == token
            assert token not in await page.evaluate("location.href")
            assert token not in await page.evaluate("document.body.innerText")

            # A typed command acts through the authenticated socket.
            await page.evaluate(
                "(() => { const i = document.getElementById('text-input');"
                " i.value = 'turn on the coffee maker';"
                " document.getElementById('text-form').requestSubmit(); })()"
            )
            await page.wait_for(
                "document.querySelector('[data-device-id=\"coffee_maker\"]')"
                "?.dataset.on === 'true'",
                timeout_s=30,
            )

            # A reload of the tab keeps the token: no second login.
            first_session = await page.evaluate("hearthPage.sessionId")
            await page.call("Page.reload")
            await page.wait_for(
                f"window.hearthPage && hearthPage.sessionId !== null"
                f" && hearthPage.sessionId !== {json.dumps(first_session)}",
                timeout_s=30,
            )
            assert not await page.evaluate("hearthPage.login")
            assert await page.evaluate("window.__csp") == []
        except (TimeoutError, AssertionError, CdpError) as e:
            await page.screenshot(tmp_path / "page.png")
            raise AssertionError(f"{e}\n{await describe_failure(page)}") from None

        # A kiosk's #token= is used once and leaves the address bar at once; a new tab (its
        # own sessionStorage) without it asks again.
        kiosk = await open_page(cdp, server.http_url + "#token=" + token)
        try:
            await kiosk.wait_for("hearthPage.sessionId", timeout_s=30)
            assert token not in await kiosk.evaluate("location.href")
            assert await kiosk.evaluate("history.length") == 2  # about:blank, the page
            fresh = await open_page(cdp, server.http_url)
            await fresh.wait_for(LOGIN_SHOWN, timeout_s=30)
        except (TimeoutError, AssertionError, CdpError) as e:
            raise AssertionError(f"{e}\n{await describe_failure(kiosk)}") from None


async def test_page_plays_a_spoken_reply(hearth_server: ServerThread, tmp_path: Path) -> None:
    """A typed question: the page shows the reply and plays its audio (Web Audio, muted)."""
    async with chromium() as cdp:
        page = await open_page(cdp, hearth_server.http_url)
        try:
            await page.wait_for("hearthPage.wsState === 'open'", timeout_s=30)
            await page.evaluate(
                "(() => { const i = document.getElementById('text-input');"
                " i.value = 'what is the temperature in the kitchen';"
                " document.getElementById('text-form').requestSubmit(); })()"
            )
            await page.wait_for(
                "hearthPage.events.some(e => e.type === 'response.done')", timeout_s=60
            )
            replies = await page.evaluate("hearthPage.replies")
            log = await page.wait_for(
                "[...document.querySelectorAll('#log li')].map(li => li.textContent)"
                ".find(t => t.includes('Playing reply audio'))",
                timeout_s=10,
            )
        except (TimeoutError, AssertionError) as e:
            await page.screenshot(tmp_path / "page.png")
            raise AssertionError(f"{e}\n{await describe_failure(page)}") from None
        assert replies and "degrees in the kitchen" in replies[-1]["text"], replies
        assert replies[-1]["audioMs"] > 1000, replies  # scheduled for playback
        assert "reply" in log
        assert await page.evaluate("hearthPage.replyAudioChunks") > 0
        result = await page.evaluate("document.getElementById('result').textContent")
        assert "degrees in the kitchen" in result


@contextlib.contextmanager
def other_origin_page(html: str) -> Iterator[int]:
    """Serve ``html`` as /outer.html (and a plain page, /plain.html) from a plain HTTP server;
    yield its port. Opened as ``localhost`` it is another site than Hearth's 127.0.0.1."""
    import functools
    import http.server
    import threading

    with tempfile.TemporaryDirectory(prefix="hearth-outer-") as tmp:
        Path(tmp, "outer.html").write_text(html, encoding="utf-8")
        Path(tmp, "plain.html").write_text("<p>plain</p>", encoding="utf-8")

        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

        httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Quiet, directory=tmp)
        )
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield int(httpd.server_address[1])
        finally:
            httpd.shutdown()
            httpd.server_close()


async def frame_location(cdp: Cdp, url: str) -> str:
    """The document location of the (out-of-process) iframe that was sent to ``url``: the
    URL itself when it rendered, ``chrome-error://…`` when the browser refused it."""
    deadline = time.monotonic() + 30
    while True:
        targets = (await cdp.call("Target.getTargets"))["targetInfos"]
        found = [t for t in targets if t["type"] == "iframe" and t["url"] == url]
        if found:
            attached = await cdp.call(
                "Target.attachToTarget", {"targetId": found[0]["targetId"], "flatten": True}
            )
            frame = Page(cdp, attached["sessionId"])
            value: str = await frame.wait_for(
                "document.readyState === 'complete' && location.href !== 'about:blank'"
                " && location.href",
                timeout_s=30,
            )
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"no iframe of {url}: {[(t['type'], t['url']) for t in targets]}")
        await asyncio.sleep(0.2)


async def test_page_cannot_be_framed(text_server_factory: Callable[..., ServerThread]) -> None:
    """frame-ancestors 'none' (and X-Frame-Options: DENY): another site's iframe of the page
    gets the browser's error page, while a page without them frames fine (the control)."""
    server = text_server_factory()
    async with chromium() as cdp:
        await cdp.call("Target.setDiscoverTargets", {"discover": True})
        with other_origin_page(f'<iframe src="{server.http_url}"></iframe>') as port:
            control = f"http://127.0.0.1:{port}/plain.html"  # another site than localhost
            page = await open_page(cdp, f"http://localhost:{port}/outer.html")
            await page.evaluate(
                f"(() => {{ const f = document.createElement('iframe'); f.src = "
                f"{json.dumps(control)}; document.body.append(f); }})()"
            )
            plain = await frame_location(cdp, control)
            hearth = await frame_location(cdp, server.http_url)
    assert plain == control
    assert hearth.startswith("chrome-error://"), hearth
