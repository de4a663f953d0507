// The voice changer page: microphone -> AudioWorklet "capture" -> 20 ms chunks as protobuf
// AudioRawFrames over the WebSocket -> converted AudioRawFrames back -> AudioWorklet "player".
// Every chunk carries pts = performance.now() in ns; the server's output inherits it, so
// now - pts on arrival is the round trip of that chunk (shown as the latency read-out).
import { decodeEnvelope, encodeAudio, encodeEnd, encodeSettings } from "/protocol.js";

const $ = (id) => document.getElementById(id);
const CHUNK_MS = 20;
const stats = { sent: 0, received: 0, samplesReceived: 0, latencyMs: null, peak: 0, errors: [], closeCode: null };
window.apipelineStats = stats;
// Tell listeners (tests, embedding pages) that the stats changed, instead of making them poll.
const statsChanged = () => window.dispatchEvent(new CustomEvent("apipeline-stats", { detail: stats }));

let ctx = null, socket = null, stream = null, capture = null, player = null;

function settings() {
  return { pitch: Number($("pitch").value), formant: Number($("formant").value) };
}

function showSettings() {
  $("pitch-value").textContent = $("pitch").value;
  $("formant-value").textContent = Number($("formant").value).toFixed(2);
}

function status(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

async function start() {
  $("start").disabled = true;
  stream = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 1 },
  });
  ctx = new AudioContext({ latencyHint: "interactive" });
  await ctx.audioWorklet.addModule("/worklet.js");
  const rate = ctx.sampleRate;
  const page = new URLSearchParams(location.search);
  const query = new URLSearchParams({ ...Object.fromEntries(Object.entries(settings()).map(([k, v]) => [k, String(v)])) });
  if (page.get("token")) query.set("token", page.get("token"));
  socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws?${query}`);
  socket.binaryType = "arraybuffer";
  socket.onmessage = (event) => receive(event.data);
  socket.onclose = (event) => {
    stats.closeCode = event.code;
    statsChanged();
    status(`closed (${event.code}${event.reason ? ": " + event.reason : ""})`, event.code !== 1000);
    teardown();
  };
  await new Promise((resolve, reject) => { socket.onopen = resolve; socket.onerror = reject; });

  player = new AudioWorkletNode(ctx, "player", { processorOptions: { maxQueued: Math.round(rate * 0.5) } });
  player.connect(ctx.destination);
  player.port.onmessage = (event) => { $("underruns").textContent = event.data; };
  capture = new AudioWorkletNode(ctx, "capture", { numberOfInputs: 1, numberOfOutputs: 0 });
  ctx.createMediaStreamSource(stream).connect(capture);
  const chunk = Math.round((rate * CHUNK_MS) / 1000);
  let pending = new Float32Array(chunk), filled = 0;
  capture.port.onmessage = (event) => {
    const block = event.data;
    let i = 0;
    while (i < block.length) {
      const n = Math.min(block.length - i, chunk - filled);
      pending.set(block.subarray(i, i + n), filled);
      filled += n; i += n;
      if (filled === chunk) {
        if (socket && socket.readyState === WebSocket.OPEN) {
          socket.send(encodeAudio(pending, rate, Math.round(performance.now() * 1e6)));
          stats.sent += 1;
        }
        pending = new Float32Array(chunk); filled = 0;
      }
    }
  };
  $("stop").disabled = false;
  status(`streaming at ${rate} Hz`);
}

function receive(data) {
  const msg = decodeEnvelope(data);
  if (msg.kind === "audio") {
    stats.received += 1;
    stats.samplesReceived += msg.samples.length;
    for (const s of msg.samples) stats.peak = Math.max(stats.peak, Math.abs(s));
    if (msg.pts !== null) {
      const ms = performance.now() - msg.pts / 1e6;
      stats.latencyMs = stats.latencyMs === null ? ms : 0.9 * stats.latencyMs + 0.1 * ms;
      $("latency").textContent = stats.latencyMs.toFixed(0);
    }
    $("received").textContent = String(stats.received);
    if (player) player.port.postMessage(msg.samples, [msg.samples.buffer]);
    statsChanged();
  } else if (msg.kind === "error") {
    stats.errors.push(msg.error);
    statsChanged();
    status(`server error: ${msg.error}`, true);
  } else if (msg.kind === "end") {
    status("stream ended");
  }
}

function stop() {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(encodeEnd());
  if (capture) capture.port.onmessage = null;
  $("stop").disabled = true;
}

function teardown() {
  if (stream) stream.getTracks().forEach((t) => t.stop());
  if (ctx) ctx.close();
  ctx = stream = capture = player = socket = null;
  $("start").disabled = false;
  $("stop").disabled = true;
}

for (const id of ["pitch", "formant"]) {
  $(id).addEventListener("input", () => {
    showSettings();
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(encodeSettings(settings()));
  });
}
$("start").addEventListener("click", () => start().catch((e) => { status(String(e), true); teardown(); }));
$("stop").addEventListener("click", stop);
showSettings();
if (new URLSearchParams(location.search).get("autostart") === "1") $("start").click();
