// The apipeline page: the microphone goes to a served pipeline (the voice changer, or the voice chatbot)
// and what it sends back is played, measured and shown.
//
// Transports: WebRTC when the server offers it (GET /webrtc/config answers 200): the microphone
// track goes to an RTCPeerConnection (Opus, the browser's jitter buffer, echo cancellation and noise
// suppression in the capture path) and a data channel "frames" carries the protobuf frames of the
// WebSocket contract. Otherwise (or when WebRTC fails, or "WebSocket only" is chosen) the WebSocket
// contract: microphone -> AudioWorklet "capture" -> 20 ms AudioRawFrames -> converted AudioRawFrames back
// -> AudioWorklet "player". Every WebSocket chunk carries pts = performance.now() in ns and the server
// echoes it on the outputs made from it, so now - pts on arrival is a round trip. On WebRTC the round
// trip is measured over the data channel (notes in docs/protocol.md).
//
// Analysis: an AudioWorklet "meter" on the microphone and one on the played output report level and F0
// (YIN) every 20 ms; the page draws the level meters and the pitch trace from them. Everything the page
// measures is on window.apipelineStats, and an "apipeline-stats" event fires when it changes (tests and
// embedding pages wait on it instead of polling); window.apipeline.record(seconds) records the output.
import { decodeEnvelope, encodeAudio, encodeEnd, encodeSettings, encodeSync } from "/protocol.js";

const $ = (id) => document.getElementById(id);
const CHUNK_MS = 20;
const TRACE_S = 8;                   // seconds of pitch history drawn
const F0_LO = 60, F0_HI = 800;       // the trace's (log) frequency axis
const DB_FLOOR = -60;                // the meters' scale: DB_FLOOR .. 0 dBFS
const PING_MS = 1000;                // round-trip probes on the WebRTC data channel
const END_WAIT_MS = 30000;           // how long Stop waits for the server's EndFrame on WebRTC (it
                                     // first converts what it holds: seconds when it runs behind)

// Voice presets: pitch (semitones) and formant (ratio) within the served schema's bounds
// (apipeline/transports/voice_changer_params.py: pitch -36..36, formant 0.25..4); "Robot-ish" maps every
// F0 to one flat 110 Hz (target_f0_range 0 semitones).
const PRESETS = [
  { name: "Natural", pitch: 0, formant: 1.0 },
  { name: "Deeper", pitch: -5, formant: 0.88 },
  { name: "Higher", pitch: 5, formant: 1.12 },
  { name: "Giant", pitch: -10, formant: 0.75 },
  { name: "Chipmunk", pitch: 10, formant: 1.35 },
  { name: "Robot-ish", pitch: 0, formant: 1.0, target_f0_mean: 110, target_f0_range: 0 },
];

const MEDIAN_OF = 25;                // voiced F0 measurements in the read-out's median (~0.5 s of voice)
const channelStats = () => ({ db: null, dbMin: null, dbMax: null, peak: 0, f0: 0, medianF0: 0, voiced: 0, updates: 0 });
const stats = {
  app: "voice-changer", state: "idle", transport: null, webrtcError: null,
  sent: 0, received: 0, samplesReceived: 0, latencyMs: null, latencySource: null, peak: 0,
  errors: [], closeCode: null, input: channelStats(), output: channelStats(), conversation: [], chatEvents: [],
};
window.apipelineStats = stats;
const statsChanged = () => window.dispatchEvent(new CustomEvent("apipeline-stats", { detail: stats }));

const params = new URLSearchParams(location.search);
let info = { app: "voice-changer", params: null };  // GET /info (docs/protocol.md)
let rtcConfig = null;                                  // GET /webrtc/config, null: no WebRTC here
let voice = { pitch: 4, formant: 1.1, target_f0_mean: null, target_f0_range: null };
let s = null;  // the running session: {ctx, stream, source, inMeter, outMeter, link, ...}

// -- settings and presets ------------------------------------------------------------------------------

function settings() {
  return { ...voice };
}

// Whether the served pipeline takes the voice settings (the voice changer; the chatbot speaking through it).
// Without /info (an older server) it is the voice changer.
const takesVoice = () => (info.served ? Boolean(info.params && "pitch" in (info.params.properties || {})) : true);

function queryFor(current) {
  const query = new URLSearchParams();
  if (takesVoice()) {
    for (const [k, v] of Object.entries(current)) if (v !== null && v !== undefined) query.set(k, String(v));
  }
  if (params.get("token")) query.set("token", params.get("token"));
  return query;
}

function showSettings() {
  $("pitch").value = String(voice.pitch);
  $("formant").value = String(voice.formant);
  $("pitch-value").textContent = (voice.pitch > 0 ? "+" : "") + voice.pitch;
  $("formant-value").textContent = Number(voice.formant).toFixed(2);
  for (const button of $("presets").children) {
    const p = PRESETS[Number(button.dataset.index)];
    const same = p.pitch === voice.pitch && p.formant === voice.formant
      && (p.target_f0_mean ?? null) === voice.target_f0_mean && (p.target_f0_range ?? null) === voice.target_f0_range;
    button.setAttribute("aria-pressed", String(same));
  }
}

function changeVoice(update) {
  voice = { ...voice, ...update };
  showSettings();
  if (s && s.link && s.link.open()) s.link.send(encodeSettings(settings()));
}

function buildPresets() {
  PRESETS.forEach((p, i) => {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = p.name;
    button.dataset.index = String(i);
    button.title = `pitch ${p.pitch} st, formant ${p.formant}×` + (p.target_f0_range === 0 ? ", flat F0" : "");
    button.addEventListener("click", () => changeVoice({
      pitch: p.pitch, formant: p.formant, target_f0_mean: p.target_f0_mean ?? null, target_f0_range: p.target_f0_range ?? null,
    }));
    $("presets").append(button);
  });
}

// -- state read-outs -----------------------------------------------------------------------------------

function setState(state, text) {
  stats.state = state;
  document.body.dataset.state = state;
  $("state-text").textContent = text || state;
  statsChanged();
}

function status(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

function showLatency(ms, source) {
  stats.latencyMs = stats.latencyMs === null || stats.latencySource !== source ? ms : 0.9 * stats.latencyMs + 0.1 * ms;
  stats.latencySource = source;
  $("latency").textContent = stats.latencyMs.toFixed(0);
  $("latency-label").textContent = source;
}

// -- devices -------------------------------------------------------------------------------------------

async function listDevices() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
  const devices = await navigator.mediaDevices.enumerateDevices();
  const fill = (select, kind) => {
    const chosen = select.value;
    select.replaceChildren(new Option("default", ""));
    devices.filter((d) => d.kind === kind && d.deviceId && d.deviceId !== "default").forEach((d, i) => {
      select.append(new Option(d.label || `${kind === "audioinput" ? "microphone" : "speaker"} ${i + 1}`, d.deviceId));
    });
    select.value = [...select.options].some((o) => o.value === chosen) ? chosen : "";
  };
  fill($("mic"), "audioinput");
  fill($("speaker"), "audiooutput");
  const canChooseSpeaker = "setSinkId" in HTMLMediaElement.prototype || "setSinkId" in AudioContext.prototype;
  $("speaker").disabled = !canChooseSpeaker;
  if (!canChooseSpeaker) $("speaker").title = "this browser cannot choose the output device";
}

function micConstraints() {
  const mic = $("mic").value;
  return {
    audio: {
      deviceId: mic ? { exact: mic } : undefined, channelCount: 1, autoGainControl: false,
      echoCancellation: $("aec").checked, noiseSuppression: $("ns").checked,
    },
  };
}

async function applySpeaker() {
  const sink = $("speaker").value;
  if (!s) return;
  try {
    if (s.audioEl && s.audioEl.setSinkId) await s.audioEl.setSinkId(sink);
    else if (s.ctx && s.ctx.setSinkId) await s.ctx.setSinkId(sink);
  } catch (e) {
    status(`cannot use that speaker: ${e.message || e}`, true);
  }
}

// What the browser actually applied (a device may not support echo cancellation, say).
function showMicrophone(stream) {
  const track = stream.getAudioTracks()[0];
  const applied = track.getSettings ? track.getSettings() : {};
  stats.microphone = {
    label: track.label, echoCancellation: applied.echoCancellation ?? null,
    noiseSuppression: applied.noiseSuppression ?? null, sampleRate: applied.sampleRate ?? null,
  };
}

// A new microphone stream (another device, or echo cancellation / noise suppression switched) replaces
// the running one without ending the session.
async function replaceMicrophone() {
  if (!s) return;
  const stream = await navigator.mediaDevices.getUserMedia(micConstraints());
  const old = s.stream;
  s.source.disconnect();
  s.stream = stream;
  s.source = s.ctx.createMediaStreamSource(stream);
  s.source.connect(s.inMeter);
  if (s.capture) s.source.connect(s.capture);
  if (s.sender) await s.sender.replaceTrack(stream.getAudioTracks()[0]);
  old.getTracks().forEach((t) => t.stop());
  showMicrophone(stream);
  stats.microphoneChanges = (stats.microphoneChanges || 0) + 1;
  statsChanged();
  status(`microphone: ${stream.getAudioTracks()[0].label || "default"}`);
}

// -- meters and the pitch trace ------------------------------------------------------------------------

const traces = { input: [], output: [] };
const recentF0 = { input: [], output: [] };
const holds = { input: DB_FLOOR, output: DB_FLOOR };
let drawPending = false;

function onMeter(which, m) {
  const c = stats[which];
  c.db = m.db; c.f0 = m.f0; c.updates += 1;
  c.peak = Math.max(c.peak, m.peak);
  if (m.db > -100) {
    c.dbMin = c.dbMin === null ? m.db : Math.min(c.dbMin, m.db);
    c.dbMax = c.dbMax === null ? m.db : Math.max(c.dbMax, m.db);
  }
  if (m.f0 > 0) {
    c.voiced += 1;
    const recent = recentF0[which];
    recent.push(m.f0);
    if (recent.length > MEDIAN_OF) recent.shift();
    const sorted = [...recent].sort((a, b) => a - b);
    c.medianF0 = sorted[sorted.length >> 1];
  }
  const trace = traces[which];
  trace.push({ t: m.t, f0: m.f0 });
  while (trace.length && trace[0].t < m.t - TRACE_S) trace.shift();
  const peakDb = m.peak > 0 ? 20 * Math.log10(m.peak) : -120;
  holds[which] = Math.max(peakDb, holds[which] - 0.4);
  if (!drawPending) {
    drawPending = true;
    (document.hidden ? (f) => setTimeout(f, 50) : requestAnimationFrame)(draw);
  }
  if (c.updates % 10 === 0) statsChanged();
}

const toWidth = (db) => `${Math.max(0, Math.min(1, (db - DB_FLOOR) / -DB_FLOOR)) * 100}%`;

function drawMeter(which, id, label) {
  const c = stats[which];
  const meter = $(id);
  meter.style.setProperty("--level", c.db === null ? "0%" : toWidth(c.db));
  meter.querySelector(".hold").style.left = toWidth(holds[which]);
  $(label).textContent = c.db === null || c.db < DB_FLOOR ? "–∞" : c.db.toFixed(0) + " dB";
}

function draw() {
  drawPending = false;
  drawMeter("input", "meter-in", "level-in");
  drawMeter("output", "meter-out", "level-out");
  $("f0-in").textContent = stats.input.medianF0 > 0 ? stats.input.medianF0.toFixed(0) : "–";
  $("f0-out").textContent = stats.output.medianF0 > 0 ? stats.output.medianF0.toFixed(0) : "–";
  const canvas = $("trace");
  const ratio = window.devicePixelRatio || 1;
  const width = Math.round(canvas.clientWidth * ratio), height = Math.round(canvas.clientHeight * ratio);
  if (canvas.width !== width || canvas.height !== height) { canvas.width = width; canvas.height = height; }
  const g = canvas.getContext("2d");
  const css = getComputedStyle(document.documentElement);
  g.clearRect(0, 0, width, height);
  const y = (f) => height - (Math.log(f / F0_LO) / Math.log(F0_HI / F0_LO)) * height;
  g.font = `${11 * ratio}px system-ui, sans-serif`;
  g.fillStyle = g.strokeStyle = css.getPropertyValue("--line");
  g.lineWidth = 1;
  for (const f of [100, 200, 400]) {
    g.beginPath(); g.moveTo(0, y(f)); g.lineTo(width, y(f)); g.stroke();
    g.fillStyle = css.getPropertyValue("--muted");
    g.fillText(`${f} Hz`, 4 * ratio, y(f) - 3 * ratio);
  }
  const now = Math.max(traces.input.at(-1)?.t ?? 0, traces.output.at(-1)?.t ?? 0);
  const x = (t) => width - ((now - t) / TRACE_S) * width;
  // where the output should be: the mic's F0 moved by the pitch setting (dashed), while no F0 mapping is on
  const target = takesVoice() && voice.target_f0_mean === null ? 2 ** (voice.pitch / 12) : null;
  $("legend-target").hidden = target === null;
  const lines = [["input", "--in", 1, 2.5], ["output", "--out", 1, 2.5]];
  if (target !== null) lines.unshift(["input", "--muted", target, 1.5]);
  for (const [which, color, scale, lineWidth] of lines) {
    g.strokeStyle = css.getPropertyValue(color);
    g.lineWidth = lineWidth * ratio;
    g.setLineDash(scale === 1 ? [] : [4 * ratio, 4 * ratio]);
    g.lineJoin = g.lineCap = "round";
    g.beginPath();
    let drawing = false;
    for (const p of traces[which]) {
      if (p.f0 <= 0) { drawing = false; continue; }
      const py = y(Math.max(F0_LO, Math.min(F0_HI, p.f0 * scale)));
      if (drawing) g.lineTo(x(p.t), py); else g.moveTo(x(p.t), py);
      drawing = true;
    }
    g.stroke();
  }
}

function meterNode(ctx, which) {
  const node = new AudioWorkletNode(ctx, "meter", { numberOfInputs: 1, numberOfOutputs: 0 });
  node.port.onmessage = (event) => {
    if (event.data.recording) node.onRecording?.(event.data);
    else onMeter(which, event.data);
  };
  return node;
}

// -- what comes back -----------------------------------------------------------------------------------

function receive(data) {
  const msg = decodeEnvelope(data);
  if (msg.kind === "audio") {
    stats.received += 1;
    stats.samplesReceived += msg.samples.length;
    for (const x of msg.samples) stats.peak = Math.max(stats.peak, Math.abs(x));
    if (msg.pts !== null && s && s.transport === "WebSocket") showLatency(performance.now() - msg.pts / 1e6, "latency");
    $("received").textContent = String(stats.received);
    if (s && s.player) s.player.port.postMessage(msg.samples, [msg.samples.buffer]);
    statsChanged();
  } else if (msg.kind === "sync" || msg.kind === "sync_notify") {
    if (msg.clientPts !== null) { showLatency(performance.now() - msg.clientPts / 1e6, "RTT"); s && (s.echoed = true); }
    statsChanged();
  } else if (msg.kind === "error") {
    stats.errors.push(msg.error);
    statsChanged();
    status(`server error: ${msg.error}`, true);
  } else if (msg.kind === "end") {
    if (s) s.ended = true;
    status("stream ended");
    if (s && s.onEnd) s.onEnd();
  } else if (msg.kind === "interruption") {
    interrupted();
  } else if (msg.kind === "text" && msg.metadata.chat) {
    conversation.message(msg.metadata, msg.text);
  }
}

// Barge-in: stop playback at once; every bot audio frame received before this was dropped with it.
function interrupted() {
  if (s && s.player) s.player.port.postMessage("flush");
  stats.interruptions = (stats.interruptions || 0) + 1;
  conversation.cut();
}

// The chatbot's conversation (notes in docs/protocol.md): TextFrames whose metadata "chat" says what they
// are: "user" (the final transcript of the user's turn), "bot" (the next words of the answer, sent as
// their audio starts playing), "bot_end" (the answer as heard, "interrupted" if cut), "user_started" /
// "user_stopped" (the server's VAD), "interrupted" (barge-in).
const conversation = {
  bot: null,  // the answer being spoken: {li, text}
  bubble(role, text) {
    $("chat-empty").hidden = true;
    const li = document.createElement("li");
    li.className = role;
    li.textContent = text;
    $("conversation").append(li);
    $("conversation").scrollTop = $("conversation").scrollHeight;
    stats.conversation.push({ role, text });
    return { li, text, index: stats.conversation.length - 1 };
  },
  setBot(text) {
    this.bot.text = text;
    this.bot.li.textContent = text;
    stats.conversation[this.bot.index].text = text;
  },
  message(meta, text) {
    const kind = meta.chat;
    stats.chatEvents.push(text ? `${kind}: ${text}` : kind);
    if (stats.chatEvents.length > 100) stats.chatEvents.shift();
    if (kind === "user_started" || kind === "user_stopped") {
      $("speaking").hidden = kind === "user_stopped";
    } else if (kind === "user") {
      this.bot = null;
      if (text) this.bubble("user", text);
    } else if (kind === "bot") {
      if (!this.bot) this.bot = this.bubble("bot", "");
      this.setBot(this.bot.text ? `${this.bot.text} ${text}` : text);
    } else if (kind === "bot_end") {
      if (!this.bot && text) this.bot = this.bubble("bot", "");
      if (this.bot) {
        this.setBot(text);
        if (meta.interrupted) this.bot.li.classList.add("cut");
      }
      this.bot = null;
    } else if (kind === "interrupted") {
      interrupted();
    }
    statsChanged();
  },
  cut() {
    if (this.bot) { this.bot.li.classList.add("cut"); this.bot = null; }
  },
};

// -- transports ----------------------------------------------------------------------------------------

async function connectWebSocket(query) {
  const rate = s.ctx.sampleRate;
  const socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws?${query}`);
  socket.binaryType = "arraybuffer";
  socket.onmessage = (event) => receive(event.data);
  const opened = await new Promise((resolve) => {
    socket.onopen = () => resolve(true);
    socket.onerror = socket.onclose = () => resolve(false);
  });
  if (!opened) {
    // A browser does not show a refused handshake's answer to the page; ask the same URL once over plain
    // HTTP, which the server answers with the refusal and its reason (403 "invalid token", 503, ...).
    const answer = await fetch(`/ws?${query}`, { cache: "no-store" }).catch(() => null);
    const reason = answer && answer.status !== 426 && !answer.ok ? `${answer.status}: ${(await answer.text()).trim()}` : "";
    throw new Error(`the server refused the session${reason ? ` (${reason})` : ""}`);
  }
  s.socket = socket;
  socket.onclose = (event) => {
    if (!s || s.socket !== socket) return;  // a session already torn down
    stats.closeCode = event.code;
    status(`closed (${event.code}${event.reason ? ": " + event.reason : ""})`, event.code !== 1000);
    teardown(event.code === 1000 ? "idle" : "error");
  };
  s.link = { open: () => socket.readyState === WebSocket.OPEN, send: (b) => socket.send(b), end: () => socket.send(encodeEnd()), close: () => socket.close() };
  s.player = new AudioWorkletNode(s.ctx, "player", { processorOptions: { maxQueued: Math.round(rate * 0.5) } });
  s.player.connect(s.ctx.destination);
  s.player.connect(s.outMeter);
  s.player.port.onmessage = (event) => { $("underruns").textContent = event.data; };
  s.capture = new AudioWorkletNode(s.ctx, "capture", { numberOfInputs: 1, numberOfOutputs: 0 });
  s.source.connect(s.capture);
  const chunk = Math.round((rate * CHUNK_MS) / 1000);
  let pending = new Float32Array(chunk), filled = 0;
  s.capture.port.onmessage = (event) => {
    const block = event.data;
    let i = 0;
    while (i < block.length) {
      const n = Math.min(block.length - i, chunk - filled);
      pending.set(block.subarray(i, i + n), filled);
      filled += n; i += n;
      if (filled === chunk) {
        if (socket.readyState === WebSocket.OPEN) {
          socket.send(encodeAudio(pending, rate, Math.round(performance.now() * 1e6)));
          stats.sent += 1;
        }
        pending = new Float32Array(chunk); filled = 0;
      }
    }
  };
  return `streaming at ${rate} Hz`;
}

function waitFor(target, event, ready, ms, what) {
  return new Promise((resolve, reject) => {
    if (ready()) return resolve();
    const timer = setTimeout(() => { target.removeEventListener(event, check); reject(new Error(`${what}: no answer in ${ms / 1000} s`)); }, ms);
    const check = () => { if (ready()) { clearTimeout(timer); target.removeEventListener(event, check); resolve(); } };
    target.addEventListener(event, check);
  });
}

async function connectWebRTC(query) {
  const pc = new RTCPeerConnection({ iceServers: rtcConfig.iceServers || [] });
  s.pc = pc;
  s.sender = pc.addTrack(s.stream.getAudioTracks()[0], s.stream);
  const channel = pc.createDataChannel("frames");
  channel.binaryType = "arraybuffer";
  channel.onmessage = (event) => receive(event.data);
  const remote = new Promise((resolve) => {
    pc.ontrack = (event) => resolve(event.streams[0] || new MediaStream([event.track]));
  });
  await pc.setLocalDescription(await pc.createOffer());
  // no trickle ICE: the offer goes once gathering is complete (host candidates come at once)
  await waitFor(pc, "icegatheringstatechange", () => pc.iceGatheringState === "complete", 5000, "ICE gathering")
    .catch(() => {});  // whatever was gathered by then is sent
  const response = await fetch(`${rtcConfig.offer || "/webrtc/offer"}?${query}`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type }),
  });
  if (!response.ok) throw new Error(`offer refused (${response.status}): ${(await response.text()).trim()}`);
  const answer = await response.json();
  await pc.setRemoteDescription({ type: answer.type, sdp: answer.sdp });
  await waitFor(channel, "open", () => channel.readyState === "open", 10000, "the data channel");
  const stream = await remote;
  // Chrome plays a remote WebRTC stream only through a media element; Web Audio taps it for the meters.
  s.audioEl = $("remote");
  s.audioEl.srcObject = stream;
  s.audioEl.play().catch(() => {});
  s.remoteSource = s.ctx.createMediaStreamSource(stream);
  s.remoteSource.connect(s.outMeter);
  s.link = { open: () => channel.readyState === "open", send: (b) => channel.send(b), end: () => channel.send(encodeEnd()), close: () => pc.close() };
  // The server closes the connection after its EndFrame (a clean end: 1000, as on the WebSocket);
  // anything else ends the session abnormally (1006).
  const closed = (why) => {
    if (!s || s.pc !== pc) return;
    stats.closeCode = s.ended ? 1000 : 1006;
    status(s.ended ? "stream ended" : why, !s.ended && !s.stopping);
    teardown(s.ended || s.stopping ? "idle" : "error");
  };
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "failed" || pc.connectionState === "closed") closed(`connection ${pc.connectionState}`);
  };
  channel.onclose = () => closed("the server closed the data channel");
  s.pinger = setInterval(() => probeRoundTrip(pc, channel), PING_MS);
  return "streaming over WebRTC";
}

// The round trip on WebRTC: a SyncFrame stamped with the page's clock, echoed by the server on the data
// channel; until an echo has come back, the ICE round trip the browser itself measures.
async function probeRoundTrip(pc, channel) {
  if (channel.readyState !== "open") return;
  channel.send(encodeSync(Math.round(performance.now() * 1e6)));
  if (s && s.echoed) return;
  const report = await pc.getStats();
  report.forEach((r) => {
    if (r.type === "candidate-pair" && r.nominated && r.currentRoundTripTime !== undefined) {
      showLatency(r.currentRoundTripTime * 1000, "ICE RTT");
      statsChanged();
    }
  });
}

// -- session -------------------------------------------------------------------------------------------

async function start() {
  $("start").disabled = true;
  setState("connecting", "connecting");
  stats.closeCode = null;
  const stream = await navigator.mediaDevices.getUserMedia(micConstraints());
  const ctx = new AudioContext({ latencyHint: "interactive" });
  s = { ctx, stream };
  showMicrophone(stream);
  await ctx.audioWorklet.addModule("/worklet.js");
  s.source = ctx.createMediaStreamSource(stream);
  s.inMeter = meterNode(ctx, "input");
  s.outMeter = meterNode(ctx, "output");
  s.source.connect(s.inMeter);
  listDevices().catch(() => {});  // labels are known once the microphone is allowed
  const query = queryFor(settings());
  const wantRtc = rtcConfig && window.RTCPeerConnection && $("transport-choice").value !== "websocket";
  let text;
  if (wantRtc) {
    try {
      s.transport = "WebRTC";
      text = await connectWebRTC(query);
    } catch (e) {
      stats.webrtcError = String(e.message || e);
      if (s.pc) { s.pc.onconnectionstatechange = null; s.pc.close(); s.pc = null; }
      if (s.remoteSource) s.remoteSource.disconnect();
      s.sender = s.audioEl = null;
    }
  }
  if (!text) {
    s.transport = "WebSocket";
    text = await connectWebSocket(query);
    if (stats.webrtcError) text += ` (WebRTC failed: ${stats.webrtcError})`;
  }
  stats.transport = s.transport;
  $("transport").textContent = s.transport;
  await applySpeaker();
  $("stop").disabled = false;
  status(text);
  setState("connected", "connected");
}

function stop() {
  if (!s) return;
  s.stopping = true;
  $("stop").disabled = true;
  if (s.capture) s.capture.port.onmessage = null;
  if (s.link && s.link.open()) s.link.send(encodeEnd());
  // the microphone track keeps flowing until the server's EndFrame: a silent peer counts as gone
  status("stopping: the server converts what it holds…");
  if (s.pc) {
    // the server answers EndFrame once everything before it was sent; then the peer connection closes
    s.endTimer = setTimeout(() => { stats.closeCode = 1006; status("the server did not end the stream"); teardown("idle"); }, END_WAIT_MS);
    s.onEnd = () => { stats.closeCode = 1000; teardown("idle"); };
  }
}

// Ends the session's resources (if any; a start that failed early has none) and resets the controls.
function teardown(state) {
  const old = s;
  s = null;
  if (old) {
    clearInterval(old.pinger);
    clearTimeout(old.endTimer);
    if (old.pc) { old.pc.onconnectionstatechange = null; old.pc.close(); }
    if (old.socket && old.socket.readyState <= WebSocket.OPEN) old.socket.close();
    if (old.stream) old.stream.getTracks().forEach((t) => t.stop());
    if (old.audioEl) old.audioEl.srcObject = null;
    if (old.ctx) old.ctx.close();
  }
  $("start").disabled = false;
  $("stop").disabled = true;
  setState(state === "error" ? "error" : "idle", state === "error" ? "disconnected" : "idle");
}

// -- recording (for tests and for users who want to keep what they heard) ------------------------------

function toBase64Int16(samples) {
  const pcm = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) pcm[i] = Math.max(-32768, Math.min(32767, Math.round(samples[i] * 32767)));
  const bytes = new Uint8Array(pcm.buffer);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

window.apipeline = {
  /** Record `seconds` of what the page plays (after the transport, as heard): {sampleRate, pcm16: base64}.
   *  With `gateDb` (dBFS), only sound louder than that counts: `seconds` of sound, however long it takes. */
  record(seconds, gateDb) {
    if (!s) return Promise.reject(new Error("not streaming"));
    const meter = s.outMeter;
    return new Promise((resolve) => {
      meter.onRecording = ({ recording, sampleRate }) => resolve({ sampleRate, pcm16: toBase64Int16(recording) });
      meter.port.postMessage({ record: seconds, gateDb });
    });
  },
  changeVoice,
  presets: PRESETS,
};

// -- wiring --------------------------------------------------------------------------------------------

async function getJson(path) {
  try {
    const response = await fetch(path, { cache: "no-store" });
    return response.ok ? await response.json() : null;
  } catch {
    return null;
  }
}

async function detectApp() {
  const token = params.get("token") ? `?token=${encodeURIComponent(params.get("token"))}` : "";
  const [served, rtc] = await Promise.all([getJson("/info"), getJson(`/webrtc/config${token}`)]);
  if (served) info = { ...info, ...served, served: true };  // no /info: an older server, the voice changer
  rtcConfig = rtc;
  stats.app = info.app;
  stats.webrtcOffered = Boolean(rtc);
  const chatbot = info.app === "chatbot";
  document.body.dataset.app = info.app;
  $("app-title").textContent = chatbot ? "Talk to the bot" : info.app === "graph" ? "Served pipeline" : "Voice changer";
  document.title = `apipeline · ${$("app-title").textContent.toLowerCase()}`;
  $("voice-card").hidden = !takesVoice();
  $("presets").hidden = chatbot;  // the bot speaking through the voice changer: the sliders only
  $("chat-card").hidden = !chatbot;
  $("hint").textContent = chatbot
    ? "Speak; the bot answers when you pause. Talk over it to interrupt."
    : "Your microphone goes to the server, the converted voice comes back. Use headphones.";
  // a voice changer wants the raw voice (use headphones); a bot that talks through speakers needs echo cancellation
  $("aec").checked = $("ns").checked = chatbot;
  if (params.get("transport") === "websocket" || !rtc) $("transport-choice").value = "websocket";
  $("transport-choice").disabled = !rtc;
}

function guard(promise) {
  promise.catch((e) => { status(String(e.message || e), true); teardown("error"); });
}

$("pitch").addEventListener("input", () => changeVoice({ pitch: Number($("pitch").value) }));
$("formant").addEventListener("input", () => changeVoice({ formant: Number($("formant").value) }));
for (const id of ["mic", "aec", "ns"]) {
  $(id).addEventListener("change", () => s && replaceMicrophone().catch((e) => status(`microphone: ${e.message || e}`, true)));
}
$("speaker").addEventListener("change", () => applySpeaker());
$("start").addEventListener("click", () => guard(start()));
$("stop").addEventListener("click", stop);
window.addEventListener("resize", () => draw());
buildPresets();
showSettings();
draw();
listDevices().catch(() => {});
detectApp().then(() => {
  window.apipelineReady = true;
  statsChanged();
  if (params.get("autostart") === "1") $("start").click();
});
