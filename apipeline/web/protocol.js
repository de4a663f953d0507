// A tiny hand-rolled encoder/decoder for the few apipeline.Envelope messages the page needs
// (apipeline/serializers/frames.proto): AudioRawFrame, UpdateSettingsFrame, SyncFrame and EndFrame out;
// AudioRawFrame, ErrorFrame, EndFrame, TextFrame, AppFrame, the user-speaking and interruption frames,
// SyncNotifyFrame and MetricsFrame in. Numbers up to 2**53 (pts in ns) are exact.

const WIRE_VARINT = 0, WIRE_I64 = 1, WIRE_LEN = 2, WIRE_I32 = 5;
const SAMPLE_INT16 = 1, SAMPLE_FLOAT32 = 2;

function varint(bytes, value) {
  // value: a non-negative integer <= 2**53 (arithmetic, not 32-bit bitwise operators)
  while (value >= 0x80) {
    bytes.push((value % 0x80) + 0x80);
    value = Math.floor(value / 0x80);
  }
  bytes.push(value);
}

function tag(bytes, field, wire) { varint(bytes, field * 8 + wire); }

function lengthDelimited(bytes, field, payload) {
  tag(bytes, field, WIRE_LEN);
  varint(bytes, payload.length);
  for (let i = 0; i < payload.length; i++) bytes.push(payload[i]);
}

function envelope(pts, field, payload, clientPts = null) {
  const bytes = [];
  if (pts !== null && pts !== undefined) { tag(bytes, 3, WIRE_VARINT); varint(bytes, pts); }
  if (clientPts !== null && clientPts !== undefined) { tag(bytes, 5, WIRE_VARINT); varint(bytes, clientPts); }
  lengthDelimited(bytes, field, payload);
  return new Uint8Array(bytes);
}

export function encodeAudio(samples, sampleRate, pts) {
  // samples: Float32Array (mono). Header fields first, then the raw little-endian samples.
  const head = [];
  tag(head, 1, WIRE_VARINT); varint(head, SAMPLE_FLOAT32);
  tag(head, 2, WIRE_VARINT); varint(head, sampleRate);
  tag(head, 3, WIRE_VARINT); varint(head, 1);
  tag(head, 5, WIRE_VARINT); varint(head, 1);
  const raw = new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength);
  tag(head, 4, WIRE_LEN); varint(head, raw.length);
  const inner = new Uint8Array(head.length + raw.length);
  inner.set(head, 0);
  inner.set(raw, head.length);
  const env = [];
  tag(env, 3, WIRE_VARINT); varint(env, pts);
  tag(env, 31, WIRE_LEN); varint(env, inner.length);
  const out = new Uint8Array(env.length + inner.length);
  out.set(env, 0);
  out.set(inner, env.length);
  return out;
}

export function encodeSettings(settings) {
  const json = new TextEncoder().encode(JSON.stringify(settings));
  const inner = [];
  lengthDelimited(inner, 1, json);
  return envelope(null, 24, inner);
}

export function encodeEnd() { return envelope(null, 21, []); }

// A SyncFrame stamped with the client's clock (pts and client_pts): what the page sends to measure a
// round trip on a channel that carries no audio timestamps (the WebRTC data channel).
export function encodeSync(clientPts) { return envelope(clientPts, 22, [], clientPts); }

class Reader {
  constructor(bytes) { this.b = bytes; this.i = 0; }
  done() { return this.i >= this.b.length; }
  varint() {
    let value = 0, scale = 1, byte;
    do {
      if (this.i >= this.b.length) throw new Error("truncated varint");
      byte = this.b[this.i++];
      value += (byte & 0x7f) * scale;
      scale *= 0x80;
    } while (byte & 0x80);
    return value;
  }
  bytes() {
    const n = this.varint();
    if (this.i + n > this.b.length) throw new Error("truncated field");
    const out = this.b.subarray(this.i, this.i + n);
    this.i += n;
    return out;
  }
  skip(wire) {
    if (wire === WIRE_VARINT) this.varint();
    else if (wire === WIRE_LEN) this.bytes();
    else if (wire === WIRE_I64) this.i += 8;
    else if (wire === WIRE_I32) this.i += 4;
    else throw new Error("unsupported wire type " + wire);
  }
}

function decodeAudio(bytes) {
  const r = new Reader(bytes);
  const a = { sampleType: 0, sampleRate: 0, channels: 0, data: new Uint8Array(0) };
  while (!r.done()) {
    const key = r.varint(), field = Math.floor(key / 8), wire = key % 8;
    if (field === 1 && wire === WIRE_VARINT) a.sampleType = r.varint();
    else if (field === 2 && wire === WIRE_VARINT) a.sampleRate = r.varint();
    else if (field === 3 && wire === WIRE_VARINT) a.channels = r.varint();
    else if (field === 4 && wire === WIRE_LEN) a.data = r.bytes();
    else r.skip(wire);
  }
  const copy = a.data.slice();  // aligned copy for the typed-array view
  let samples;
  if (a.sampleType === SAMPLE_FLOAT32) samples = new Float32Array(copy.buffer);
  else if (a.sampleType === SAMPLE_INT16) samples = Float32Array.from(new Int16Array(copy.buffer), (s) => s / 32768);
  else throw new Error("unknown sample type " + a.sampleType);
  if (a.channels > 1) samples = samples.filter((_, i) => i % a.channels === 0);  // first channel
  return { sampleRate: a.sampleRate, samples };
}

function decodeError(bytes) {
  const r = new Reader(bytes);
  const e = { error: "", fatal: false };
  while (!r.done()) {
    const key = r.varint(), field = Math.floor(key / 8), wire = key % 8;
    if (field === 1 && wire === WIRE_LEN) e.error = new TextDecoder().decode(r.bytes());
    else if (field === 2 && wire === WIRE_VARINT) e.fatal = r.varint() !== 0;
    else r.skip(wire);
  }
  return e;
}

function decodeStrings(bytes, names) {
  // a message of string fields 1, 2, ... -> {names[0]: ..., names[1]: ...}
  const r = new Reader(bytes);
  const out = {};
  for (const name of names) out[name] = "";
  while (!r.done()) {
    const key = r.varint(), field = Math.floor(key / 8), wire = key % 8;
    if (wire === WIRE_LEN && field >= 1 && field <= names.length) out[names[field - 1]] = new TextDecoder().decode(r.bytes());
    else r.skip(wire);
  }
  return out;
}

function parseJson(text, fallback) {
  if (!text) return fallback;
  try { return JSON.parse(text); } catch { return fallback; }
}

// Envelope fields holding an empty message: the frame's kind.
const EMPTY_KINDS = { 13: "interruption", 14: "interruption_end", 21: "end", 22: "sync", 23: "sync_notify",
  25: "user_started_speaking", 26: "user_stopped_speaking" };

export function decodeEnvelope(buffer) {
  // -> {kind: "audio"|"error"|"end"|"text"|"app"|"metrics"|<EMPTY_KINDS>|"other", pts, clientPts, metadata, ...}
  const r = new Reader(new Uint8Array(buffer));
  const msg = { kind: "other", pts: null, clientPts: null, metadata: {}, name: "" };
  while (!r.done()) {
    const key = r.varint(), field = Math.floor(key / 8), wire = key % 8;
    if (field === 3 && wire === WIRE_VARINT) msg.pts = r.varint();
    else if (field === 5 && wire === WIRE_VARINT) msg.clientPts = r.varint();
    else if (field === 2 && wire === WIRE_LEN) msg.name = new TextDecoder().decode(r.bytes());
    else if (field === 4 && wire === WIRE_LEN) msg.metadata = parseJson(new TextDecoder().decode(r.bytes()), {});
    else if (field === 31 && wire === WIRE_LEN) Object.assign(msg, { kind: "audio" }, decodeAudio(r.bytes()));
    else if (field === 11 && wire === WIRE_LEN) Object.assign(msg, { kind: "error" }, decodeError(r.bytes()));
    else if (field === 30 && wire === WIRE_LEN) Object.assign(msg, { kind: "text" }, decodeStrings(r.bytes(), ["text"]));
    else if (field === 40 && wire === WIRE_LEN) {
      const app = decodeStrings(r.bytes(), ["type", "fields"]);
      Object.assign(msg, { kind: "app", type: app.type, fields: parseJson(app.fields, {}) });
    } else if (field === 15 && wire === WIRE_LEN) {
      Object.assign(msg, { kind: "metrics", data: parseJson(decodeStrings(r.bytes(), ["data"]).data, []) });
    } else if (field in EMPTY_KINDS && wire === WIRE_LEN) { r.bytes(); msg.kind = EMPTY_KINDS[field]; }
    else r.skip(wire);
  }
  return msg;
}
