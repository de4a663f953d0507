// AudioWorklet processors of the apipeline voice changer page (no build step).
//
// "capture": copies each 128-sample render quantum of its (mono) input to the main thread.
// "player":  plays Float32Array chunks posted by the main thread from a bounded queue; when the queue
//            runs dry it outputs silence and counts an underrun; past `maxQueued` samples the oldest are
//            dropped so playback latency stays bounded.

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

registerProcessor("capture", CaptureProcessor);
registerProcessor("player", PlayerProcessor);
