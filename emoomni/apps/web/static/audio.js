// Microphone capture (an AudioWorklet making PCM16 frames) and reply playback (WebAudio, per turn, droppable).

const RATES = [8000, 16000, 24000, 44100, 48000];

export class Microphone {
  /** `onFrame(ArrayBuffer)` gets 20 ms of PCM16 mono at `this.rate`. */
  constructor(context, stream, onFrame) {
    this.context = context;
    this.stream = stream;
    this.onFrame = onFrame;
    // The context's own rate when the session takes it (no resampling here), else 16 kHz.
    this.rate = RATES.includes(context.sampleRate) ? context.sampleRate : 16000;
  }

  async start() {
    await this.context.audioWorklet.addModule(new URL('./capture-worklet.js', import.meta.url));
    this.source = this.context.createMediaStreamSource(this.stream);
    this.node = new AudioWorkletNode(this.context, 'pcm-capture', {
      numberOfInputs: 1, numberOfOutputs: 1, channelCount: 1, channelCountMode: 'explicit',
      processorOptions: { targetRate: this.rate },
    });
    this.node.port.onmessage = (event) => this.onFrame(event.data);
    // A silent path to the output keeps the graph rendering in every browser.
    this.mute = this.context.createGain();
    this.mute.gain.value = 0;
    this.source.connect(this.node).connect(this.mute).connect(this.context.destination);
  }

  stop() {
    if (this.source) this.source.disconnect();
    if (this.node) {
      // Frames the worklet posted before the stop are dropped, not handed to a page that has let the mic go.
      this.node.port.onmessage = null;
      this.node.port.close();
      this.node.disconnect();
    }
    for (const track of this.stream.getTracks()) track.stop();
  }
}

export class Speaker {
  /** Plays PCM16 chunks in order, per turn; `drop(turnId)` silences a turn at once and refuses its later audio. */
  constructor(context) {
    this.context = context;
    this.turns = new Map(); // turnId -> {sources, pieces: [[start, seconds]], dropped}
    this.next = 0;
  }

  turn(turnId) {
    if (!this.turns.has(turnId)) this.turns.set(turnId, { sources: [], pieces: [], dropped: false });
    return this.turns.get(turnId);
  }

  play(turnId, sampleRate, pcm) {
    const turn = this.turn(turnId);
    if (turn.dropped || pcm.length === 0) return;
    const buffer = this.context.createBuffer(1, pcm.length, sampleRate);
    const samples = buffer.getChannelData(0);
    for (let i = 0; i < pcm.length; i++) samples[i] = pcm[i] / 32768;
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.context.destination);
    const start = Math.max(this.context.currentTime + 0.03, this.next);
    source.start(start);
    this.next = start + buffer.duration;
    turn.sources.push(source);
    turn.pieces.push([start, buffer.duration]);
  }

  drop(turnId) {
    const turn = this.turn(turnId);
    turn.dropped = true;
    const now = this.context.currentTime;
    for (const source of turn.sources) {
      try { source.stop(); } catch { /* not started yet or already ended */ }
    }
    turn.pieces = turn.pieces.map(([start, seconds]) => [start, Math.max(0, Math.min(seconds, now - start))]);
    this.next = now;
    for (const other of this.turns.values()) {
      for (const [start, seconds] of other.pieces) this.next = Math.max(this.next, start + seconds);
    }
  }

  playedMs(turnId) {
    const turn = this.turns.get(turnId);
    if (!turn) return 0;
    const now = this.context.currentTime;
    let played = 0;
    for (const [start, seconds] of turn.pieces) played += Math.max(0, Math.min(seconds, now - start));
    return played * 1000;
  }

  queuedMs(turnId) {
    const turn = this.turns.get(turnId);
    return turn ? turn.pieces.reduce((sum, [, seconds]) => sum + seconds, 0) * 1000 : 0;
  }

  totalPlayedMs() {
    let total = 0;
    for (const turnId of this.turns.keys()) total += this.playedMs(turnId);
    return total;
  }

  playing() {
    return this.context.currentTime < this.next - 0.01;
  }
}
