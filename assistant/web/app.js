// Hearth browser client: microphone -> AudioWorklet (16 kHz PCM16) -> WebSocket, a text box,
// a live event log and a panel of the home's devices with their states.
//
// Plain script, no build step and no third-party code: the Hearth server serves this folder
// as static files, with a Content-Security-Policy that allows scripts and styles from itself
// only (so no inline script or style here or in index.html). Query parameters (kiosks, tests):
//   ?ws=ws://host:port/path   WebSocket URL (default: the page's own host, path "/"); the
//                             page's policy lets it reach only the server that served it
//   ?autostart=1              start the microphone as soon as the socket is open
//   ?lang=en                  language declared in session.update (default: server's)
//   ?handsfree=1              start hands-free: the server hears only commands that follow
//                             the wake word "okay nabu" (session.update wake)
//
// Access token: when the server wants one (/api/devices answers 401), the page asks for it
// once and keeps it in sessionStorage (this tab only, gone when the tab closes). It goes in an
// Authorization header to /api/devices and in the first session.update on the WebSocket
// (browsers cannot set headers on a WebSocket); never in an address. A kiosk may open the page
// with #token=SECRET: the fragment never reaches the server, and the page removes it from the
// address bar and the history at once.
"use strict";

(() => {
  const TARGET_RATE = 16000;
  // Spoken replies: asked for at the voice's own rate (no resampling on the server);
  // ?reply=text turns them off (text replies only).
  const REPLY_RATE = 22050;
  const MAX_LOG = 300; // log entries kept in the DOM
  // Overflow policy for audio: if the socket cannot drain (slow network, stalled server),
  // frames are dropped rather than queued without bound; ~2 s of audio at 16 kHz PCM16.
  const MAX_BUFFERED_BYTES = 64000;
  const RECONNECT_MIN_MS = 500;
  const RECONNECT_MAX_MS = 8000;

  const TOKEN_KEY = "hearth.token";

  const params = new URLSearchParams(location.search);
  const $ = (id) => document.getElementById(id);
  const ui = {
    conn: $("conn"), mic: $("mic"), micLabel: $("mic-label"), level: $("level"),
    speech: $("speech"), partial: $("partial"), result: $("result"), form: $("text-form"), input: $("text-input"),
    send: $("send"), devicesNote: $("devices-note"), deviceList: $("device-list"),
    log: $("log"), clearLog: $("clear-log"), main: $("main"), login: $("login"),
    loginForm: $("login-form"), tokenInput: $("token-input"), loginError: $("login-error"),
    handsfree: $("handsfree"),
  };
  // Hands-free: the server drops the microphone's audio until it hears this wake word.
  const WAKE_WORD = "okay_nabu";

  // State the page exposes for automated checks (tests read it through the DevTools protocol).
  const page = {
    wsState: "connecting",
    micState: "off",
    framesSent: 0,
    framesDropped: 0,
    captureRate: null,
    sessionId: null,
    events: [], // the last MAX_LOG decoded events
    devices: {}, // device id -> last known state object
    lastError: null,
    login: false, // the token form is showing
    replies: [], // {text, language, audioMs, playedMs, interrupted} per reply
    replyAudioChunks: 0, // response.audio chunks scheduled for playback
    handsFree: false, // wake word asked for (the hands-free switch)
    wakes: 0, // wake.detected events
  };
  window.hearthPage = page;

  let token = takeTokenFromAddress() || readStoredToken();
  let ws = null;
  let reconnectMs = RECONNECT_MIN_MS;
  let mic = null; // {ctx, stream, node}
  const deviceInfo = new Map(); // id -> {id, name, area, kind}

  // ---------------------------------------------------------------- access token -------

  function readStoredToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || "";
    } catch {
      return ""; // storage disabled: the token lives in this page only
    }
  }

  function storeToken(value) {
    try {
      if (value) sessionStorage.setItem(TOKEN_KEY, value);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      // storage disabled: nothing to do
    }
  }

  // A token in the address (#token=, or a stray ?token=) is taken out of the address bar and
  // the history before anything else happens. Only the fragment's is used: a query string
  // has already been sent to the server, so it is treated as spent.
  function takeTokenFromAddress() {
    const query = new URLSearchParams(location.search);
    const fragment = new URLSearchParams(location.hash.slice(1));
    if (!query.has("token") && !fragment.has("token")) return "";
    const given = fragment.get("token") || "";
    query.delete("token");
    fragment.delete("token");
    const q = query.toString();
    const f = fragment.toString();
    history.replaceState(null, "", `${location.pathname}${q ? `?${q}` : ""}${f ? `#${f}` : ""}`);
    return given;
  }

  function authHeaders() {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    return headers;
  }

  function showLogin(message) {
    page.login = true;
    if (ws) {
      const sock = ws;
      ws = null;
      sock.close();
    }
    if (mic) stopMic();
    setConn("closed", "Access token required");
    ui.main.hidden = true;
    ui.login.hidden = false;
    ui.loginError.textContent = message || "";
    ui.tokenInput.focus();
  }

  function hideLogin() {
    page.login = false;
    ui.login.hidden = true;
    ui.main.hidden = false;
    ui.loginError.textContent = "";
  }

  // Ask for the device list: it says whether the server wants a token (and whether ours is
  // right) before the WebSocket is opened.
  async function start() {
    const result = await loadDevices();
    if (result.status === 401) {
      const hadToken = Boolean(token);
      token = "";
      storeToken("");
      showLogin(hadToken ? "That token was not accepted." : "");
      return;
    }
    if (result.status === 429) {
      const wait = result.retryAfter ? ` in ${result.retryAfter} s` : " later";
      showLogin(`Too many wrong tokens from this address: try again${wait}.`);
      return;
    }
    if (token && result.status === 200) storeToken(token);
    hideLogin();
    connect();
  }

  // ---------------------------------------------------------------- WebSocket ----------

  function wsUrl() {
    const given = params.get("ws");
    if (given) return given;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/`;
  }

  function setConn(state, text) {
    page.wsState = state;
    document.body.dataset.ws = state;
    ui.conn.dataset.state = state;
    ui.conn.textContent = text;
    const open = state === "open";
    ui.send.disabled = !open;
    ui.mic.disabled = !open && !mic;
  }

  function connect() {
    setConn("connecting", "Connecting…");
    let sock;
    try {
      sock = new WebSocket(wsUrl());
    } catch (err) {
      setConn("closed", "Bad server address");
      page.lastError = String(err);
      return;
    }
    sock.binaryType = "arraybuffer";
    ws = sock;
    sock.onopen = () => {
      reconnectMs = RECONNECT_MIN_MS;
      setConn("open", "Connected");
      sendSessionUpdate();
      if (page.sessionId !== null) loadDevices(); // a reconnect: states may have moved on
      if (params.get("autostart") === "1" && !mic) startMic();
    };
    sock.onmessage = (msg) => {
      if (typeof msg.data !== "string") return; // the server sends no audio to this page
      let ev;
      try {
        ev = JSON.parse(msg.data);
      } catch {
        return;
      }
      handleEvent(ev);
    };
    sock.onclose = (e) => {
      if (ws !== sock) return;
      ws = null;
      if (page.lastError && page.lastError.startsWith("unauthorized")) {
        // Retrying cannot help until the user supplies a (new) token.
        const hadToken = Boolean(token);
        token = "";
        storeToken("");
        page.lastError = null;
        showLogin(hadToken ? "The server did not accept that token." : "");
        return;
      }
      const why = e.reason ? `: ${e.reason}` : "";
      setConn("closed", `Disconnected${why} — retrying`);
      setTimeout(connect, reconnectMs);
      reconnectMs = Math.min(reconnectMs * 2, RECONNECT_MAX_MS);
    };
  }

  function sendJson(obj) {
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify(obj));
      return true;
    }
    return false;
  }

  function sendSessionUpdate() {
    const msg = { type: "session.update", sample_rate: TARGET_RATE };
    msg.reply = { audio: params.get("reply") !== "text", sample_rate: REPLY_RATE };
    const lang = params.get("lang");
    if (lang) msg.language = lang;
    if (token) msg.token = token;
    if (page.handsFree) msg.wake = { word: WAKE_WORD };
    sendJson(msg);
  }

  function listeningText() {
    return page.handsFree ? "Say “Okay Nabu”, then your command…" : "Listening…";
  }

  function setHandsFree(on) {
    page.handsFree = on;
    ui.handsfree.checked = on;
    sendJson({ type: "session.update", wake: { word: on ? WAKE_WORD : null } });
    if (mic) setSpeech("listening", listeningText());
  }

  // ---------------------------------------------------------------- microphone ---------

  async function startMic() {
    if (mic) return;
    page.micState = "starting";
    ui.mic.disabled = true;
    try {
      const stream = await navigator.mediaDevices.getUserMedia({
        // Whisper copes with raw audio better than with the browser's noise suppression,
        // which is tuned for calls and smears consonants.
        // Echo cancellation on: the page plays spoken replies, and the microphone must not
        // hear them (the server takes speech during a reply as a barge-in).
        audio: { channelCount: 1, echoCancellation: true, noiseSuppression: false,
          autoGainControl: true },
      });
      const ctx = new AudioContext();
      await ctx.audioWorklet.addModule("worklet.js");
      const source = ctx.createMediaStreamSource(stream);
      // No outputs: the node only consumes audio. Chromium still runs it (it is pulled
      // automatically), and nothing reaches the speakers.
      const node = new AudioWorkletNode(ctx, "pcm16-capture", {
        numberOfInputs: 1, numberOfOutputs: 0, channelCount: 1, channelCountMode: "explicit",
      });
      node.port.onmessage = (e) => onFrame(e.data);
      source.connect(node);
      if (ctx.state !== "running") {
        // Without a user gesture (autostart) the browser may keep the context suspended, and
        // resume() then stays pending until a click: do not wait for it forever.
        await Promise.race([ctx.resume(), new Promise((r) => setTimeout(r, 1000))]);
      }
      if (ctx.state !== "running") {
        stream.getTracks().forEach((t) => t.stop());
        ctx.close();
        page.micState = "off";
        setSpeech("idle", "Press the microphone button to start");
        return;
      }
      mic = { ctx, stream, node };
      page.captureRate = ctx.sampleRate;
      page.micState = "on";
      document.body.dataset.mic = "on";
      ui.mic.dataset.active = "true"; // the label says what a press does, so no aria-pressed
      ui.micLabel.textContent = "Stop microphone";
      setSpeech("listening", listeningText());
    } catch (err) {
      page.micState = "error";
      page.lastError = String(err);
      setSpeech("idle", micErrorText(err));
      logLocal("mic", `Microphone unavailable: ${err.message || err}`, true);
    } finally {
      ui.mic.disabled = !(ws && ws.readyState === WebSocket.OPEN) && !mic;
    }
  }

  function micErrorText(err) {
    if (!window.isSecureContext) return "Microphone needs https or localhost";
    if (err && err.name === "NotAllowedError") return "Microphone permission denied";
    if (err && err.name === "NotFoundError") return "No microphone found";
    return "Microphone unavailable";
  }

  function stopMic() {
    if (!mic) return;
    const { ctx, stream, node } = mic;
    mic = null;
    node.port.postMessage("stop");
    node.disconnect();
    stream.getTracks().forEach((t) => t.stop());
    ctx.close();
    // Whatever speech was in flight is over: let the server finish the utterance now.
    sendJson({ type: "audio.commit" });
    page.micState = "off";
    document.body.dataset.mic = "off";
    ui.mic.dataset.active = "false";
    ui.micLabel.textContent = "Start microphone";
    ui.level.style.width = "0";
    setSpeech("idle", "Microphone off");
    ui.mic.disabled = !(ws && ws.readyState === WebSocket.OPEN);
  }

  function onFrame(data) {
    ui.level.style.width = `${Math.min(100, Math.round(Math.sqrt(data.peak) * 100))}%`;
    if (!ws || ws.readyState !== WebSocket.OPEN || ws.bufferedAmount > MAX_BUFFERED_BYTES) {
      page.framesDropped += 1;
      return;
    }
    ws.send(data.pcm);
    page.framesSent += 1;
  }

  function setSpeech(state, text) {
    ui.speech.dataset.state = state;
    ui.speech.textContent = text;
  }

  // ---------------------------------------------------------------- devices ------------

  // {status}: 200, 401 (token wanted or wrong), 429 (locked out: retryAfter s), 0 (no list).
  async function loadDevices() {
    let resp;
    try {
      resp = await fetch("/api/devices", { headers: authHeaders(), cache: "no-store" });
    } catch {
      resp = null;
    }
    if (resp && (resp.status === 401 || resp.status === 429)) {
      return { status: resp.status, retryAfter: resp.headers.get("Retry-After") };
    }
    try {
      if (!resp || !resp.ok) throw new Error(`HTTP ${resp ? resp.status : "error"}`);
      const body = await resp.json();
      const list = Array.isArray(body) ? body : body.devices || [];
      for (const d of list) {
        const id = d.id || d.device_id;
        if (!id) continue;
        deviceInfo.set(id, { id, name: d.name || id, area: d.area_name || d.area || "",
          kind: d.kind || "" });
        if (d.state && typeof d.state === "object") page.devices[id] = d.state;
      }
      ui.devicesNote.textContent = list.length ? "" : "This home has no devices.";
      ui.devicesNote.hidden = list.length > 0;
    } catch {
      // Graceful degradation: a server without the device API still reports states in its
      // events; devices appear here as they do.
      ui.devicesNote.hidden = false;
      ui.devicesNote.textContent = "Device list not available; devices appear as they report.";
      renderDevices();
      return { status: 0 };
    }
    renderDevices();
    return { status: 200 };
  }

  function isOn(state) {
    if (!state || typeof state !== "object") return false;
    for (const key of ["state", "power", "POWER", "output", "on"]) {
      const v = state[key];
      if (v === true || v === 1) return true;
      if (typeof v === "string" && ["on", "true", "open", "unlocked", "playing"]
        .includes(v.toLowerCase())) return true;
    }
    return false;
  }

  function describeState(state) {
    if (!state || typeof state !== "object") return "unknown";
    const parts = [];
    for (const key of ["state", "power", "POWER", "output", "on", "lock_state", "position"]) {
      if (key in state) {
        const v = state[key];
        parts.push(typeof v === "boolean" ? (v ? "on" : "off") : String(v).toLowerCase());
        break;
      }
    }
    if (typeof state.brightness === "number") {
      // zigbee2mqtt reports 0-254; other adapters report percent. Show percent either way.
      const pct = state.brightness > 100 ? Math.round((state.brightness / 254) * 100)
        : state.brightness;
      parts.push(`${pct}%`);
    }
    for (const key of ["temperature", "current_temperature", "target_temperature"]) {
      if (typeof state[key] === "number") {
        parts.push(`${state[key]}°`);
        break;
      }
    }
    if (typeof state.volume === "number") parts.push(`vol ${state.volume}`);
    if (state.color && typeof state.color === "string") parts.push(state.color);
    return parts.length ? parts.join(" · ") : "unknown";
  }

  function renderDevices() {
    const ids = new Set([...deviceInfo.keys(), ...Object.keys(page.devices)]);
    const byArea = new Map();
    for (const id of ids) {
      const info = deviceInfo.get(id) || { id, name: id.replaceAll("_", " "), area: "", kind: "" };
      const area = info.area || "other";
      if (!byArea.has(area)) byArea.set(area, []);
      byArea.get(area).push(info);
    }
    const frag = document.createDocumentFragment();
    for (const [area, devs] of [...byArea.entries()].sort()) {
      const section = document.createElement("section");
      section.className = "area";
      const h = document.createElement("h3");
      h.textContent = area.replaceAll("_", " ");
      const ul = document.createElement("ul");
      ul.className = "device-grid";
      for (const info of devs.sort((a, b) => a.name.localeCompare(b.name))) {
        ul.append(deviceCard(info));
      }
      section.append(h, ul);
      frag.append(section);
    }
    ui.deviceList.replaceChildren(frag);
  }

  function deviceCard(info) {
    const li = document.createElement("li");
    li.className = "device";
    li.dataset.deviceId = info.id;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = info.name;
    const kind = document.createElement("span");
    kind.className = "kind";
    kind.textContent = info.kind;
    const state = document.createElement("span");
    state.className = "state";
    li.append(name, kind, state);
    paintDevice(li, page.devices[info.id]);
    return li;
  }

  function paintDevice(li, state) {
    const on = isOn(state);
    li.dataset.on = String(on);
    li.dataset.state = state ? JSON.stringify(state) : "";
    const text = state ? describeState(state) : "unknown";
    li.querySelector(".state").textContent = text;
    li.setAttribute("aria-label", `${li.querySelector(".name").textContent}: ${text}`);
  }

  function updateDevice(id, state) {
    if (!id || !state || typeof state !== "object") return;
    page.devices[id] = { ...(page.devices[id] || {}), ...state };
    const li = ui.deviceList.querySelector(`[data-device-id="${CSS.escape(id)}"]`);
    if (!li) {
      renderDevices();
      return;
    }
    paintDevice(li, page.devices[id]);
    li.classList.add("flash");
    setTimeout(() => li.classList.remove("flash"), 800);
  }

  // ---------------------------------------------------------------- events -------------

  function handleEvent(ev) {
    page.events.push(ev);
    if (page.events.length > MAX_LOG) page.events.shift();
    const type = ev.type || "?";
    switch (type) {
      case "session.created":
        page.sessionId = ev.session_id || ev.id || null;
        addLog(type, "Session started", page.sessionId ? `id ${page.sessionId}` : "");
        break;
      case "session.updated":
        break; // our own settings echoed back; nothing to show
      case "speech.started":
        setSpeech("speaking", "Hearing speech…");
        addLog(type, "Speech started");
        break;
      case "speech.stopped":
        setSpeech(mic ? "listening" : "idle", mic ? listeningText() : "Microphone off");
        addLog(type, "Speech stopped");
        break;
      case "transcript.partial":
        ui.partial.classList.remove("final");
        ui.partial.textContent = ev.text ? `${ev.text}…` : "";
        setResult("", null);
        break;
      case "transcript.final":
        ui.partial.classList.add("final");
        ui.partial.textContent = `“${ev.text || ""}”`;
        setResult("", null);
        addLog(type, `“${ev.text || ""}”`);
        break;
      case "intent":
        addLog(type, ...describeIntent(ev));
        if (!ev.intent) setResult(`✗ ${ev.reason || "No command recognised"}`, false);
        break;
      case "action":
        addLog(type, ...describeAction(ev), `s-${ev.status}`);
        if (ev.final) showActionResult(ev);
        if (ev.state && ev.device_id) updateDevice(ev.device_id, ev.state);
        break;
      case "device.state":
        updateDevice(ev.device_id, ev.state);
        break;
      case "metrics":
        addLog(type, outcomeText(ev.outcome), describeMetrics(ev), ev.outcome === "error");
        break;
      case "response.text":
        page.replies.push({ text: ev.text, language: ev.language, audioMs: 0, playedMs: 0,
          interrupted: false });
        // After the action's own line (✓ kitchen light: confirmed), the words Hearth says.
        ui.result.textContent = ui.result.textContent
          ? `${ui.result.textContent} · 🔈 ${ev.text}` : `🔈 ${ev.text}`;
        addLog(type, ev.text, ev.audio ? "speaking" : "");
        break;
      case "response.audio":
        playReply(ev);
        break;
      case "response.done":
        if (ev.audio_ms) addLog(type, `Reply spoken (${Math.round(ev.audio_ms)} ms of audio)`);
        break;
      case "response.interrupted":
        stopReply();
        if (page.replies.length) {
          const r = page.replies[page.replies.length - 1];
          r.interrupted = true;
          r.playedMs = ev.played_ms;
        }
        addLog(type, `Reply interrupted after ${Math.round(ev.played_ms)} ms`);
        break;
      case "wake.detected":
        page.wakes += 1;
        setSpeech("speaking", "Yes? Say your command…");
        addLog(type, "Wake word heard", ev.word || "");
        break;
      case "timer.finished":
        addLog(type, `Timer finished (${ev.duration_s} s)`);
        break;
      case "error":
        page.lastError = `${ev.code || "error"}: ${ev.message || ""}`;
        addLog(type, ev.code || "error", ev.message || "", true);
        if (ev.utterance_id) setResult(`✗ ${ev.message || ev.code}`, false);
        break;
      default:
        addLog(type, "", JSON.stringify(ev));
    }
  }

  // ---------------------------------------------------------------- replies ------------

  let player = null; // {ctx, next, sources}

  function playReply(ev) {
    try {
      if (!player) {
        const ctx = new AudioContext();
        player = { ctx, next: 0, sources: new Set() };
      }
      const { ctx } = player;
      if (ctx.state !== "running") ctx.resume();
      const bytes = Uint8Array.from(atob(ev.audio), (c) => c.charCodeAt(0));
      const pcm = new Int16Array(bytes.buffer, 0, bytes.length >> 1);
      if (!pcm.length) return;
      const buf = ctx.createBuffer(1, pcm.length, ev.sample_rate);
      const ch = buf.getChannelData(0);
      for (let i = 0; i < pcm.length; i++) ch[i] = pcm[i] / 32768;
      const src = ctx.createBufferSource();
      src.buffer = buf;
      src.connect(ctx.destination);
      const at = Math.max(ctx.currentTime + 0.02, player.next);
      src.start(at);
      player.next = at + buf.duration;
      player.sources.add(src);
      src.onended = () => player && player.sources.delete(src);
      page.replyAudioChunks += 1;
      if (page.replies.length) page.replies[page.replies.length - 1].audioMs += buf.duration * 1000;
      if (page.replyAudioChunks === 1 || ev.offset_ms === 0) {
        logLocal("reply", `Playing reply audio (${ev.sample_rate} Hz)`);
      }
    } catch (err) {
      logLocal("reply", `Cannot play the reply: ${err.message || err}`, true);
    }
  }

  function stopReply() {
    if (!player) return;
    for (const src of player.sources) {
      try { src.stop(); } catch (_) { /* already stopped */ }
    }
    player.sources.clear();
    player.next = 0;
  }

  function setResult(text, ok) {
    ui.result.textContent = text;
    if (ok === null) delete ui.result.dataset.ok;
    else ui.result.dataset.ok = String(ok);
  }

  function showActionResult(ev) {
    const name = (deviceInfo.get(ev.device_id) || {}).name || ev.device_id || ev.intent;
    const ok = ev.status === "confirmed";
    const state = ev.state ? ` — ${describeState(ev.state)}` : "";
    setResult(`${ok ? "✓" : "✗"} ${name}: ${ev.status}${state}`, ok);
  }

  function describeIntent(ev) {
    const it = ev.intent === undefined ? ev : ev.intent;
    if (!it || !it.name) return ["No command recognised", ev.reason || (it && it.reason) || ""];
    const slots = it.slots || {};
    const bits = [];
    for (const [k, v] of Object.entries(slots)) {
      if (v === null || v === undefined) continue;
      if (Array.isArray(v) && v.length === 0) continue;
      if (typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 0) continue;
      bits.push(`${k}=${Array.isArray(v) ? v.join(",") : typeof v === "object" ? JSON.stringify(v) : v}`);
    }
    const conf = typeof it.confidence === "number" ? ` (${Math.round(it.confidence * 100)}%` +
      `${it.source ? `, ${it.source}` : ""})` : "";
    return [`${it.name}${conf}`, bits.join(" ")];
  }

  function describeAction(ev) {
    const dev = ev.device_id || "—";
    const name = (deviceInfo.get(dev) || {}).name || dev;
    const bad = ["failed", "rejected", "unconfirmed"].includes(ev.status);
    return [`${name}: ${ev.status || "?"}`, ev.detail || "", bad];
  }

  function outcomeText(outcome) {
    return {
      actions: "Done", no_intent: "No command recognised", no_speech: "No speech",
      error: "Failed", cancelled: "Cancelled",
    }[outcome] || "Done";
  }

  function describeMetrics(ev) {
    const src = ev.timings_ms || ev.timings || ev.stages || ev.metrics || ev;
    const parts = [];
    for (const [k, v] of Object.entries(src)) {
      if (typeof v !== "number" || k === "utterance_id" || k === "audio_ms") continue;
      // Keys ending in _s are seconds; everything else is taken as milliseconds.
      const ms = k.endsWith("_s") ? v * 1000 : v;
      const label = k.replace(/_(ms|s)$/, "").replace("_to_", " → ").replaceAll("_", " ");
      parts.push(`${label} ${ms.toFixed(0)} ms`);
    }
    return parts.join(" · ");
  }

  function logLocal(tag, text, bad) {
    addLog(tag, text, "", bad);
  }

  function addLog(type, text, sub = "", bad = false, extraClass = "") {
    const atBottom = ui.log.scrollTop + ui.log.clientHeight >= ui.log.scrollHeight - 8;
    const li = document.createElement("li");
    li.dataset.type = type;
    const time = document.createElement("time");
    const now = new Date();
    time.dateTime = now.toISOString();
    time.textContent = now.toLocaleTimeString([], { hour12: false });
    const tag = document.createElement("span");
    tag.className = `tag t-${type.split(".")[0]}${bad ? " t-bad" : ""} ${extraClass}`.trim();
    tag.textContent = type;
    const detail = document.createElement("span");
    detail.className = "detail";
    detail.textContent = text;
    if (sub) {
      const s = document.createElement("span");
      s.className = "sub";
      s.textContent = ` ${sub}`;
      detail.append(s);
    }
    li.append(time, tag, detail);
    ui.log.append(li);
    while (ui.log.childElementCount > MAX_LOG) ui.log.firstElementChild.remove();
    if (atBottom) ui.log.scrollTop = ui.log.scrollHeight;
  }

  // ---------------------------------------------------------------- wiring -------------

  ui.mic.addEventListener("click", () => (mic ? stopMic() : startMic()));
  page.handsFree = params.get("handsfree") === "1";
  ui.handsfree.checked = page.handsFree;
  ui.handsfree.addEventListener("change", () => setHandsFree(ui.handsfree.checked));
  ui.form.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = ui.input.value.trim();
    if (!text) return;
    const msg = { type: "text", text };
    const lang = params.get("lang");
    if (lang) msg.language = lang;
    if (sendJson(msg)) ui.input.value = "";
  });
  ui.clearLog.addEventListener("click", () => ui.log.replaceChildren());
  ui.loginForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const given = ui.tokenInput.value.trim();
    if (!given) return;
    ui.tokenInput.value = "";
    token = given;
    start();
  });
  start();
})();
