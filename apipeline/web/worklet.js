// AudioWorklet processors of the apipeline page (no build step).
//
// "capture": copies each 128-sample render quantum of its (mono) input to the main thread (the
//            WebSocket path sends it; the WebRTC path hands the track itself to the peer connection).
// "player":  plays Float32Array chunks posted by the main thread from a bounded queue; when the queue
//            runs dry it outputs silence and counts an underrun; past `maxQueued` samples the oldest are
//            dropped so playback latency stays bounded.
// "meter":   level (RMS and peak, dBFS) and F0 of its input every HOP_S seconds, posted to the main
//            thread; on request it also records its input and posts the samples once it has enough
//            (with `gateDb`, only the render quanta louder than that: so many seconds of sound).
//
// F0 is estimated with YIN (de Cheveigné & Kawahara 2002): the input is decimated to about 12 kHz (a
// boxcar average, enough below 1 kHz), then for each 25 ms window the cumulative-mean-normalised
// difference d'(tau) is computed for periods 1/1000 .. 1/60 s; the first dip under THRESHOLD (then its
// local minimum, refined by a parabola) is the period. Frames quieter than GATE_DB or without such a dip
// are unvoiced (f0 = 0).

class CaptureProcessor extends AudioWorkletProcessor {
  process(inputs) {
    const input = inputs[0];
    if (input && input.length > 0) {
      this.port.postMessage(input[0].slice(0));
    }
    return true;
  }
}

class PlayerProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.queue = [];
    this.offset = 0;
    this.queued = 0;
    this.underruns = 0;
    this.maxQueued = (options.processorOptions && options.processorOptions.maxQueued) || sampleRate;
    this.port.onmessage = (event) => {
      if (event.data === "flush") {  // an interruption: drop what is queued at once
        this.queue = []; this.queued = 0; this.offset = 0; this.started = false;
        return;
      }
      this.queue.push(event.data);
      this.queued += event.data.length;
      while (this.queued > this.maxQueued && this.queue.length > 1) {
        const dropped = this.queue.shift();
        this.queued -= dropped.length - this.offset;
        this.offset = 0;
      }
    };
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    let i = 0;
    while (i < out.length && this.queue.length > 0) {
      const head = this.queue[0];
      const n = Math.min(out.length - i, head.length - this.offset);
      out.set(head.subarray(this.offset, this.offset + n), i);
      i += n;
      this.offset += n;
      this.queued -= n;
      if (this.offset >= head.length) {
        this.queue.shift();
        this.offset = 0;
      }
    }
    if (i < out.length) {
      out.fill(0, i);
      if (this.started) this.underruns += 1;
    } else {
      this.started = true;
    }
    for (let ch = 1; ch < outputs[0].length; ch++) outputs[0][ch].set(out);
    if (currentFrame % sampleRate < out.length) this.port.postMessage(this.underruns);  // about once a second
    return true;
  }
}

const HOP_S = 0.02, WINDOW_S = 0.025, F0_MIN = 60, F0_MAX = 1000, THRESHOLD = 0.15, GATE_DB = -55;

class MeterProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.factor = Math.max(1, Math.round(sampleRate / 12000));
    this.rate = sampleRate / this.factor;
    this.window = Math.round(this.rate * WINDOW_S);
    this.tauMin = Math.max(2, Math.floor(this.rate / F0_MAX));
    this.tauMax = Math.ceil(this.rate / F0_MIN);
    this.size = this.window + this.tauMax + 1;
    this.ring = new Float32Array(this.size);  // decimated samples, newest at `this.pos - 1`
    this.pos = 0;
    this.filled = 0;
    this.frame = new Float32Array(this.size);
    this.diff = new Float32Array(this.tauMax + 2);
    this.acc = 0; this.accN = 0;             // the decimator's running sum
    this.hop = Math.round(sampleRate * HOP_S);
    this.sinceHop = 0; this.sumSq = 0; this.peak = 0; this.count = 0;
    this.recording = null; this.recorded = 0;
    this.port.onmessage = (event) => {
      if (event.data && event.data.record) {
        this.recording = new Float32Array(Math.round(event.data.record * sampleRate));
        this.recorded = 0;
        this.recordGate = event.data.gateDb === undefined ? null : 10 ** (event.data.gateDb / 10);  // mean square
      }
    };
  }

  yin() {
    const { ring, frame, diff, size, window: w, tauMin, tauMax } = this;
    for (let i = 0; i < size; i++) frame[i] = ring[(this.pos + i) % size];  // oldest first
    diff[0] = 1;
    let running = 0, best = -1;
    for (let tau = 1; tau <= tauMax; tau++) {
      let d = 0;
      for (let j = 0; j < w; j++) { const x = frame[j] - frame[j + tau]; d += x * x; }
      running += d;
      diff[tau] = running > 0 ? (d * tau) / running : 1;
    }
    for (let tau = tauMin; tau < tauMax; tau++) {
      if (diff[tau] < THRESHOLD) {
        while (tau + 1 < tauMax && diff[tau + 1] < diff[tau]) tau++;
        best = tau;
        break;
      }
    }
    if (best < 0) return 0;
    const a = diff[best - 1], b = diff[best], c = diff[best + 1];
    const denom = a - 2 * b + c;
    const shift = denom > 0 ? (0.5 * (a - c)) / denom : 0;
    return this.rate / (best + Math.max(-0.5, Math.min(0.5, shift)));
  }

  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (!input) return true;
    for (let i = 0; i < input.length; i++) {
      const s = input[i];
      this.sumSq += s * s; this.count += 1;
      const m = s < 0 ? -s : s;
      if (m > this.peak) this.peak = m;
      this.acc += s; this.accN += 1;
      if (this.accN === this.factor) {
        this.ring[this.pos] = this.acc / this.factor;
        this.pos = (this.pos + 1) % this.size;
        if (this.filled < this.size) this.filled += 1;
        this.acc = 0; this.accN = 0;
      }
    }
    let loud = true;
    if (this.recording && this.recordGate !== null) {
      let sq = 0;
      for (let i = 0; i < input.length; i++) sq += input[i] * input[i];
      loud = sq / input.length >= this.recordGate;
    }
    if (this.recording && loud) {
      const n = Math.min(input.length, this.recording.length - this.recorded);
      this.recording.set(input.subarray(0, n), this.recorded);
      this.recorded += n;
      if (this.recorded >= this.recording.length) {
        this.port.postMessage({ recording: this.recording, sampleRate }, [this.recording.buffer]);
        this.recording = null;
      }
    }
    this.sinceHop += input.length;
    if (this.sinceHop >= this.hop) {
      const rms = Math.sqrt(this.sumSq / Math.max(1, this.count));
      const db = rms > 0 ? 20 * Math.log10(rms) : -120;
      const f0 = this.filled === this.size && db > GATE_DB ? this.yin() : 0;
      this.port.postMessage({ t: currentTime, db, peak: this.peak, f0 });
      this.sinceHop = 0; this.sumSq = 0; this.peak = 0; this.count = 0;
    }
    return true;
  }
}

registerProcessor("capture", CaptureProcessor);
registerProcessor("player", PlayerProcessor);
registerProcessor("meter", MeterProcessor);
