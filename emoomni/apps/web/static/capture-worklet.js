// Turns the microphone into 20 ms frames of PCM16 mono at `targetRate` (resampled linearly when the audio
// context runs at another rate) and posts each frame's ArrayBuffer to the page.
class PcmCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { targetRate } = options.processorOptions;
    this.step = sampleRate / targetRate;
    this.frameLength = Math.round(targetRate / 50);
    this.frame = new Int16Array(this.frameLength);
    this.filled = 0;
    this.position = 0;
  }

  push(value) {
    const s = Math.max(-1, Math.min(1, value));
    this.frame[this.filled++] = s < 0 ? s * 0x8000 : s * 0x7fff;
    if (this.filled === this.frameLength) {
      this.port.postMessage(this.frame.buffer, [this.frame.buffer]);
      this.frame = new Int16Array(this.frameLength);
      this.filled = 0;
    }
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    if (this.step === 1) {
      for (let i = 0; i < channel.length; i++) this.push(channel[i]);
      return true;
    }
    while (this.position < channel.length) {
      const i = Math.floor(this.position);
      const a = channel[i];
      const b = i + 1 < channel.length ? channel[i + 1] : a;
      this.push(a + (b - a) * (this.position - i));
      this.position += this.step;
    }
    this.position -= channel.length;
    return true;
  }
}

registerProcessor('pcm-capture', PcmCapture);
