// Hearth microphone capture: an AudioWorkletProcessor that turns the browser's float audio
// (44.1 or 48 kHz, whatever the AudioContext runs at) into 16 kHz PCM s16le mono frames.
//
// Runs on the audio rendering thread, so it allocates nothing per render quantum beyond the
// outgoing frame, and never blocks. Frames are posted to the main thread (transferred, not
// copied), which forwards them as binary WebSocket messages.

const TARGET_RATE = 16000;
const FRAME_MS = 20; // 320 samples at 16 kHz: small enough for low latency, few messages
const TAPS = 63; // low-pass FIR length; odd so the filter has a centre tap

// Windowed-sinc low-pass (Blackman window). Decimating 48k -> 16k without it folds everything
// above 8 kHz back into the speech band, which Whisper hears as hiss.
function designLowPass(cutoff, taps) {
  const h = new Float32Array(taps);
  const mid = (taps - 1) / 2;
  let sum = 0;
  for (let i = 0; i < taps; i++) {
    const x = i - mid;
    const sinc = x === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * x) / (Math.PI * x);
    const w = 0.42 - 0.5 * Math.cos((2 * Math.PI * i) / (taps - 1))
      + 0.08 * Math.cos((4 * Math.PI * i) / (taps - 1));
    h[i] = sinc * w;
    sum += h[i];
  }
  for (let i = 0; i < taps; i++) h[i] /= sum; // unity gain at DC
  return h;
}

class Pcm16Capture extends AudioWorkletProcessor {
  constructor() {
    super();
    // `sampleRate` is a global of the AudioWorkletGlobalScope: the context's real rate.
    this.ratio = sampleRate / TARGET_RATE;
    this.passthrough = Math.abs(this.ratio - 1) < 1e-6;
    // Cut a little below the new Nyquist (8 kHz) so the transition band stays under it; when
    // upsampling (an 8 kHz context) the input's own Nyquist is the limit.
    const cutoff = (0.45 * Math.min(TARGET_RATE, sampleRate)) / sampleRate;
    this.kernel = designLowPass(cutoff, TAPS);
    this.len = TAPS + 1; // circular history: one extra slot to filter the previous instant too
    this.history = new Float32Array(this.len);
    this.pos = 0; // where the next input sample goes in `history`
    // Time of the next output sample, in input samples, relative to the newest input sample.
    this.due = 0;
    this.frameLen = (TARGET_RATE * FRAME_MS) / 1000;
    this.frame = new Int16Array(this.frameLen);
    this.filled = 0;
    this.peak = 0;
    this.running = true;
    this.port.onmessage = (e) => {
      if (e.data === "stop") this.running = false;
    };
  }

  // Low-pass output at the instant `age` input samples before the newest one.
  filteredAt(age) {
    const h = this.kernel;
    const buf = this.history;
    const len = this.len;
    // The oldest sample the filter needs is TAPS-1 samples before the instant.
    let j = (this.pos - 1 - age - (TAPS - 1) + 2 * len) % len;
    let acc = 0;
    for (let i = 0; i < TAPS; i++) {
      acc += h[i] * buf[j];
      j = j + 1 === len ? 0 : j + 1;
    }
    return acc;
  }

  emit(sample) {
    const s = Math.max(-1, Math.min(1, sample));
    this.frame[this.filled++] = s < 0 ? s * 0x8000 : s * 0x7fff;
    const a = Math.abs(s);
    if (a > this.peak) this.peak = a;
    if (this.filled === this.frameLen) {
      const out = this.frame;
      this.port.postMessage({ pcm: out.buffer, peak: this.peak }, [out.buffer]);
      this.frame = new Int16Array(this.frameLen);
      this.filled = 0;
      this.peak = 0;
    }
  }

  process(inputs) {
    if (!this.running) return false;
    const input = inputs[0];
    if (!input || input.length === 0) return true; // no source connected yet
    const channel = input[0]; // getUserMedia is asked for mono; extra channels are ignored
    for (let i = 0; i < channel.length; i++) {
      if (this.passthrough) {
        this.emit(channel[i]);
        continue;
      }
      this.history[this.pos] = channel[i];
      this.pos = this.pos + 1 === this.len ? 0 : this.pos + 1;
      this.due -= 1;
      // 44.1 kHz / 16 kHz is not an integer: output instants fall between input samples, so
      // interpolate linearly between the filtered signal at the two neighbouring samples
      // (after the low-pass the signal is smooth enough for that to be accurate).
      while (this.due <= 0) {
        const frac = 1 + this.due; // in (0, 1]: position between previous and newest sample
        const prev = this.filteredAt(1);
        const cur = this.filteredAt(0);
        this.emit(prev + (cur - prev) * frac);
        this.due += this.ratio;
      }
    }
    return true;
  }
}

registerProcessor("pcm16-capture", Pcm16Capture);
