// The EmoOmni web demo: camera and microphone to a live session over a WebSocket, the agent's thinking, voice and
// timings back. Wire format: emoomni/apps/web/server.py. State for scripts and tests: document.body.dataset.state
// (idle|listening|thinking|speaking), .playedMs (agent audio played), .micMs (microphone audio captured),
// .interrupted (turns interrupted), .sessionId, .turnsInFlight (ids, space-separated), .converseBusy,
// .provisional (provisional transcripts received).
import { Microphone, Speaker } from './audio.js';

const $ = (id) => document.getElementById(id);
const AUDIO = 1;
const FRAME = 2;
const PARTS = {
  ECOT_PART_EMOTION_ANALYSIS: 'emotion', ECOT_PART_INTENT: 'intent', ECOT_PART_STRATEGY: 'strategy',
  ECOT_PART_RESPONSE: 'reply',
};
const STATE_WORDS = {
  idle: 'idle (press Start)', listening: 'listening', thinking: 'thinking', speaking: 'speaking',
};
const token = new URLSearchParams(location.hash.slice(1)).get('token') || '';
const query = token ? `?token=${encodeURIComponent(token)}` : '';
const wsBase = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`;

const app = {
  running: false, live: false, ws: null, context: null, mic: null, speaker: null, stream: null, video: false,
  muted: false, sessionId: '', resumeToken: '', turns: new Map(), shownTurn: '', micMs: 0, interrupted: 0, frameTimer: 0,
  converseBusy: false, reported: new Map(), typed: '', epoch: 0, early: null,
};

// ---- status and state --------------------------------------------------------------------------------------------

function say(message, level = 'info') {
  $('status').textContent = message;
  $('status').dataset.level = level;
}

// Live turns of the current stream still waiting for their reply. A turn of an earlier stream (before a reconnect)
// never finishes: the gateway that had it is gone or has forgotten it, so it is marked lost instead (onStatus).
function turnsInFlight() {
  const ids = [];
  for (const [turnId, turn] of app.turns) {
    if (turn.live && turn.epoch === app.epoch && !turn.done && !turn.interrupted && !turn.error) ids.push(turnId);
  }
  return ids;
}

function updateState() {
  const playing = app.speaker ? app.speaker.playing() : false;
  let state = 'idle';
  const waiting = turnsInFlight();
  if ((app.running && app.live) || app.converseBusy || playing) {
    state = playing ? 'speaking' : (waiting.length || app.converseBusy ? 'thinking' : 'listening');
  }
  document.body.dataset.turnsInFlight = waiting.join(' ');
  document.body.dataset.converseBusy = String(app.converseBusy);
  if (document.body.dataset.state !== state) {
    document.body.dataset.state = state;
    $('state-text').textContent = STATE_WORDS[state];
  }
  const agent = $('agent-speaking');
  agent.dataset.on = String(playing);
  agent.querySelector('span').textContent = playing ? 'speaking' : 'quiet';
  document.body.dataset.playedMs = String(Math.round(app.speaker ? app.speaker.totalPlayedMs() : 0));
  document.body.dataset.micMs = String(app.micMs);
  const controls = app.running && app.live;
  $('interrupt').disabled = !controls;
  $('text').disabled = !controls;
  $('send-text').disabled = !controls;
}

// ---- the conversation on the page --------------------------------------------------------------------------------

function turnFor(turnId, label = '') {
  if (!app.turns.has(turnId)) {
    const item = document.createElement('li');
    item.dataset.turnId = turnId;
    item.innerHTML = '<p class="user"><span class="who">You:</span> <span class="said">…</span></p>'
      + '<p class="agent"><span class="who">Agent:</span> <span class="said"></span></p><p class="note"></p>';
    if (label) item.querySelector('.user .said').textContent = label;
    $('transcript').append(item);
    app.turns.set(turnId, {
      item, live: !label, done: false, interrupted: false, error: '', ack: '', reply: '', talker: '',
      epoch: app.epoch,
    });
  }
  return app.turns.get(turnId);
}

function showTurn(turnId) {
  if (app.shownTurn === turnId) return;
  app.shownTurn = turnId;
  for (const id of ['emotion', 'intent', 'strategy', 'reply', 'instruction']) $(id).textContent = '';
  $('controls').replaceChildren();
}

function agentLine(turn) {
  const said = turn.item.querySelector('.agent .said');
  said.textContent = [turn.ack, turn.reply].filter(Boolean).join(' ');
  turn.item.querySelector('.agent').scrollIntoView({ block: 'nearest' });
}

function note(turn, text) {
  turn.item.querySelector('.note').textContent = text;
}

function onTurnEvent(event) {
  const turnId = event.turn_id;
  const turn = turnFor(turnId);
  showTurn(turnId);
  if (event.perception && !turn.live) {
    turn.item.querySelector('.user .said').textContent = event.perception.transcript?.text || '(no words heard)';
  } else if (event.ecot_delta) {
    const id = PARTS[event.ecot_delta.part];
    if (id && event.ecot_delta.text) $(id).textContent += event.ecot_delta.text;
    if (id === 'reply' && event.ecot_delta.text) {
      turn.reply += event.ecot_delta.text;
      agentLine(turn);
    }
  } else if (event.strategy) {
    $('strategy').textContent = event.strategy;
  } else if (event.instruction) {
    $('instruction').textContent = event.instruction.text || '';
    const rows = [];
    for (const [name, value] of Object.entries(event.instruction.controls || {})) {
      const dt = document.createElement('dt');
      dt.textContent = name.replace(/_/g, ' ');
      const dd = document.createElement('dd');
      dd.textContent = typeof value === 'number' ? value.toFixed(2) : value;
      rows.push(dt, dd);
    }
    $('controls').replaceChildren(...rows);
  } else if (event.done) {
    const ecot = event.done.ecot || {};
    $('emotion').textContent = ecot.emotion_analysis || '';
    $('intent').textContent = ecot.intent || '';
    $('strategy').textContent = ecot.strategy || '';
    $('reply').textContent = ecot.response || '';
    turn.done = true;
    if (!turn.interrupted) {
      turn.reply = ecot.response || turn.reply;
      agentLine(turn);
    }
    turn.item.dataset.done = 'true';
  } else if (event.error) {
    turn.error = `${event.error.code}${event.error.stage ? ` in ${event.error.stage}` : ''}: ${event.error.message}`;
    note(turn, `this turn failed: ${turn.error}`);
  }
}

function bar(label, from, width, scale, kind) {
  const row = document.createElement('div');
  row.className = 'bar-row';
  const name = document.createElement('span');
  name.textContent = `${label} ${Math.round(width)} ms`;
  const track = document.createElement('div');
  track.className = 'track';
  track.setAttribute('aria-hidden', 'true');
  const fill = document.createElement('div');
  fill.className = `bar ${kind}`;
  fill.style.left = `${(100 * from) / scale}%`;
  fill.style.width = `${Math.max(0.5, (100 * width) / scale)}%`;
  track.append(fill);
  row.append(name, track);
  return row;
}

function onLatency(latency) {
  const turn = turnFor(latency.turn_id);
  const eot = latency.end_of_turn_ms || 0;
  const ack = latency.ack_ms || 0;
  const first = latency.first_audio_ms || 0;
  const v2v = latency.voice_to_voice_ms || 0;
  const scale = Math.max(eot + first, v2v, ack, 1);
  const item = document.createElement('li');
  item.dataset.turnId = latency.turn_id;
  const title = document.createElement('p');
  const words = (turn.item.querySelector('.user .said').textContent || '').slice(0, 40);
  title.textContent = `Turn “${words}”`;
  item.append(title, bar('end of turn', 0, eot, scale, 'eot'));
  if (ack) item.append(bar('acknowledgement', 0, ack, scale, 'ack'));
  if (first) item.append(bar('first audio', eot, first, scale, 'first'));
  if (v2v) item.append(bar('voice to voice', 0, v2v, scale, 'v2v'));
  if (latency.barge_in_decided_ms) {
    const p = document.createElement('p');
    p.textContent = `interrupted: decided ${Math.round(latency.barge_in_decided_ms)} ms after you began`;
    item.append(p);
  }
  const old = [...$('latency').children].find((li) => li.dataset.turnId === latency.turn_id);
  if (old) old.replaceWith(item); else $('latency').append(item);
}

// The words of the user's speech so far (provisional transcripts), shown until the turn starts with its own.
function hearing(text) {
  let line = $('hearing');
  if (!text) {
    if (line) line.remove();
    return;
  }
  if (!line) {
    line = document.createElement('li');
    line.id = 'hearing';
    line.innerHTML = '<p class="user"><span class="who">You (so far):</span> <span class="said"></span></p>';
    $('transcript').append(line);
  }
  line.querySelector('.said').textContent = text;
}

function setUserSpeaking(on) {
  $('user-speaking').dataset.on = String(on);
  $('user-speaking').querySelector('span').textContent = on ? 'speaking' : 'quiet';
}

function onSessionEvent(event) {
  if (event.speech) {
    setUserSpeaking(Boolean(event.speech.speaking));
  } else if (event.turn_started) {
    hearing('');
    const turn = turnFor(event.turn_started.turn_id);
    if (event.turn_started.trigger === 'text') turn.item.querySelector('.user .said').textContent = app.typed;
    showTurn(event.turn_started.turn_id);
  } else if (event.transcript?.provisional && event.transcript.turn_id) {
    // The words came after the speech became a turn, before its final transcript: shown in the turn's line.
    const turn = turnFor(event.transcript.turn_id);
    if (!turn.heard) turn.item.querySelector('.user .said').textContent = `${event.transcript.text || ''} …`;
    document.body.dataset.provisional = String(Number(document.body.dataset.provisional || 0) + 1);
  } else if (event.transcript?.provisional) {
    hearing(event.transcript.text || '');
    document.body.dataset.provisional = String(Number(document.body.dataset.provisional || 0) + 1);
  } else if (event.transcript) {
    const turn = turnFor(event.transcript.turn_id);
    turn.heard = true;
    turn.item.querySelector('.user .said').textContent = event.transcript.text || '(no words heard)';
  } else if (event.ack) {
    const turn = turnFor(event.ack.turn_id);
    turn.ack = event.ack.text || '';
    agentLine(turn);
  } else if (event.turn) {
    onTurnEvent(event.turn);
  } else if (event.interrupted) {
    const turn = turnFor(event.interrupted.turn_id);
    app.speaker.drop(event.interrupted.turn_id);
    turn.interrupted = true;
    turn.item.classList.add('interrupted');
    turn.item.dataset.interrupted = event.interrupted.reason || 'barge_in';
    const reason = { barge_in: 'you spoke over the agent', client: 'you pressed Interrupt',
      continued: 'you went on speaking' }[event.interrupted.reason] || event.interrupted.reason;
    note(turn, `interrupted (${reason}); heard: “${event.interrupted.heard_reply || ''}”`);
    app.interrupted += 1;
    document.body.dataset.interrupted = String(app.interrupted);
  } else if (event.latency) {
    onLatency(event.latency);
  } else if (event.error) {
    say(`The agent refused a message: ${event.error.message}`, 'warn');
  } else if (event.ended) {
    app.live = false;
  }
  updateState();
}

function onAudio(buffer) {
  const view = new DataView(buffer);
  const length = view.getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, length)));
  const pcm = new Int16Array(buffer.slice(4 + length));
  const turn = turnFor(header.turn_id);
  if (turn.interrupted) return; // the server sends none after `interrupted`; this guards what was in flight
  app.speaker.play(header.turn_id, header.sample_rate, pcm);
  if (header.talker && header.talker !== turn.talker) {
    turn.talker = header.talker;
    turn.item.dataset.talker = header.talker;
    if (!turn.interrupted) note(turn, `voice: ${header.talker}${header.warnings.length ? ` (${header.warnings.join('; ')})` : ''}`);
  }
  updateState();
}

// ---- the live session's socket -----------------------------------------------------------------------------------

function connect() {
  const ws = new WebSocket(`${wsBase}/ws${query}`);
  ws.binaryType = 'arraybuffer';
  app.ws = ws;
  ws.onopen = () => {
    ws.send(JSON.stringify({
      type: 'start', sample_rate: app.mic.rate, video: app.video, talker: $('talker').value,
      resume_id: app.sessionId, resume_token: app.resumeToken,
    }));
  };
  ws.onmessage = (message) => {
    if (typeof message.data !== 'string') return onAudio(message.data);
    const data = JSON.parse(message.data);
    if (data.type === 'status') return onStatus(data);
    return onSessionEvent(data);
  };
  ws.onclose = () => {
    if (app.ws !== ws) return;
    app.live = false;
    updateState();
    if (!app.running) return;
    document.body.dataset.status = 'disconnected';
    setUserSpeaking(false);
    say('Lost the connection to the EmoOmni web server; reconnecting…', 'error');
    setTimeout(() => { if (app.running && app.ws === ws) connect(); }, 1500);
  };
}

function onStatus(status) {
  const levels = { live: 'info', switching: 'info', starting: 'warn', memory_lost: 'warn', stopped: 'info',
    ended: 'info' };
  const text = status.message.charAt(0).toUpperCase() + status.message.slice(1);
  say(status.code === 'stack_down' ? `The agent is unavailable: ${text}` : text, levels[status.code] || 'error');
  document.body.dataset.status = status.code;
  setUserSpeaking(false); // a new or lost session: the last speech report no longer holds
  if (status.code === 'live') {
    app.live = true;
    for (const turnId of turnsInFlight()) {
      const turn = app.turns.get(turnId);
      turn.error = 'lost with the connection';
      note(turn, 'this turn was lost with the connection; say it again');
    }
    app.epoch += 1; // a new stream: the gateway knows none of the earlier turns, so they are reported no more
    for (const audio of app.early || []) send(AUDIO, audio);
    app.early = null;
    app.sessionId = status.session_id;
    app.resumeToken = status.resume_token || app.resumeToken; // kept in the page only: it resumes the session
    document.body.dataset.sessionId = status.session_id;
  } else if (status.code === 'ended' || status.code === 'refused') {
    app.live = false;
    stop(false);
  } else if (status.code !== 'switching') {
    app.live = false;
  }
  updateState();
}

function send(tag, bytes) {
  if (!app.live || !app.ws || app.ws.readyState !== WebSocket.OPEN) return;
  const message = new Uint8Array(1 + bytes.byteLength);
  message[0] = tag;
  message.set(new Uint8Array(bytes), 1);
  app.ws.send(message);
}

function onMicFrame(frame) {
  app.micMs += Math.round((1000 * frame.byteLength) / 2 / app.mic.rate);
  // Muted: silence goes instead, so that the session's clock (the audio) keeps running.
  const audio = app.muted ? new ArrayBuffer(frame.byteLength) : frame;
  if (app.early && !app.live) {
    // Said right after Start, before the session is open: kept (the last 3 s) and sent once it is.
    app.early.push(audio);
    if (app.early.length > 150) app.early.shift();
    return;
  }
  send(AUDIO, audio);
}

function sendCameraFrame() {
  const video = $('camera');
  if (!app.video || !app.live || !video.videoWidth) return;
  const canvas = $('frame');
  const scale = Math.min(1, 640 / video.videoWidth);
  canvas.width = Math.round(video.videoWidth * scale);
  canvas.height = Math.round(video.videoHeight * scale);
  canvas.getContext('2d').drawImage(video, 0, 0, canvas.width, canvas.height);
  canvas.toBlob(async (blob) => { if (blob) send(FRAME, await blob.arrayBuffer()); }, 'image/jpeg', 0.8);
}

function reportPlayback() {
  if (!app.live || !app.ws || app.ws.readyState !== WebSocket.OPEN) return;
  for (const [turnId, turn] of app.turns) {
    if (!turn.live || turn.interrupted || turn.epoch !== app.epoch) continue;
    const played = Math.round(app.speaker.playedMs(turnId));
    if (played === 0 || app.reported.get(turnId) === played) continue;
    app.reported.set(turnId, played);
    app.ws.send(JSON.stringify({ type: 'playback', turn_id: turnId, played_ms: played }));
  }
}

// ---- devices -----------------------------------------------------------------------------------------------------

async function openDevices() {
  const audio = { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 };
  const video = { width: { ideal: 640 }, height: { ideal: 480 } };
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new Error('this browser gives no camera or microphone here (the page needs https or localhost)');
  }
  try {
    return { stream: await navigator.mediaDevices.getUserMedia({ audio, video }), video: true };
  } catch (both) {
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio });
    } catch (error) {
      if (error.name === 'NotAllowedError' || error.name === 'SecurityError') {
        throw new Error('the microphone was refused: allow it for this page (the icon left of the address), then '
          + 'press Start again');
      }
      if (error.name === 'NotFoundError') throw new Error('no microphone was found: connect one, then press Start again');
      throw new Error(`the microphone could not be opened (${error.name}: ${error.message})`);
    }
    const why = both.name === 'NotAllowedError' ? 'refused' : 'not available';
    $('devices').textContent = `Microphone: on. Camera: ${why} (talking without video).`;
    $('devices').dataset.camera = why;
    return { stream, video: false };
  }
}

async function start() {
  app.context = app.context || new AudioContext();
  await app.context.resume();
  app.speaker = app.speaker || new Speaker(app.context);
  let devices;
  try {
    say('Asking for the camera and the microphone…');
    devices = await openDevices();
  } catch (error) {
    $('devices').textContent = 'Microphone: refused or missing. Camera: off.';
    say(`Cannot start: ${error.message}`, 'error');
    document.body.dataset.status = 'device_refused';
    return;
  }
  app.stream = devices.stream;
  app.video = devices.video;
  if (app.video) {
    $('devices').textContent = 'Microphone: on. Camera: on.';
    $('devices').dataset.camera = 'on';
  }
  $('camera').srcObject = app.video ? app.stream : null;
  app.mic = new Microphone(app.context, app.stream, onMicFrame);
  await app.mic.start();
  app.running = true;
  app.early = [];
  $('start').textContent = 'Stop';
  $('mute').disabled = false;
  if (app.video) say('Connecting…');
  app.frameTimer = setInterval(sendCameraFrame, 500);
  connect();
  updateState();
}

function stop(tellServer = true) {
  app.running = false;
  app.live = false;
  clearInterval(app.frameTimer);
  if (app.mic) app.mic.stop();
  app.mic = null;
  $('camera').srcObject = null;
  $('devices').textContent = 'Camera and microphone: off';
  const ws = app.ws;
  app.ws = null;
  if (ws) {
    if (tellServer && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'stop' }));
    ws.close();
  }
  $('start').textContent = 'Start';
  $('mute').disabled = true;
  if (tellServer) say('Stopped. Press Start to talk again (the conversation is remembered).');
  updateState();
}

// ---- upload a clip (Converse) ------------------------------------------------------------------------------------

async function sendClip(file) {
  app.context = app.context || new AudioContext();
  await app.context.resume();
  app.speaker = app.speaker || new Speaker(app.context);
  const ws = new WebSocket(`${wsBase}/ws/converse${query}`);
  ws.binaryType = 'arraybuffer';
  app.converseBusy = true;
  updateState();
  say(`Sending ${file.name}…`);
  ws.onopen = async () => {
    ws.send(JSON.stringify({ type: 'converse', filename: file.name, talker: $('talker').value }));
    ws.send(await file.arrayBuffer());
  };
  let first = true;
  ws.onmessage = (message) => {
    if (typeof message.data !== 'string') return onAudio(message.data);
    const data = JSON.parse(message.data);
    if (data.type === 'status') return say(data.message.charAt(0).toUpperCase() + data.message.slice(1), 'error');
    if (data.type === 'converse_done') { say(`${file.name}: answered.`); return ws.close(); }
    if (data.turn && first) {
      first = false;
      turnFor(data.turn.turn_id, `(clip ${file.name})`).item.dataset.clip = file.name;
    }
    return onSessionEvent(data);
  };
  ws.onclose = () => { app.converseBusy = false; updateState(); };
  ws.onerror = () => say('Lost the connection to the EmoOmni web server while sending the clip.', 'error');
}

// ---- wiring ------------------------------------------------------------------------------------------------------

async function loadInfo() {
  try {
    const response = await fetch(`/api/info${query}`);
    if (!response.ok) throw new Error(await response.text());
    const info = await response.json();
    const select = $('talker');
    for (const talker of info.talkers) {
      const option = document.createElement('option');
      option.value = talker.name;
      option.textContent = `${talker.name}${talker.active ? ' (default)' : ''}`;
      option.title = `languages: ${talker.languages.join(', ')}; licence: ${talker.license}`;
      select.append(option);
    }
    if (info.status && !app.running) say(`${info.status.charAt(0).toUpperCase()}${info.status.slice(1)}.`, 'warn');
  } catch (error) {
    say(`Cannot reach the EmoOmni web server: ${error.message}`, 'error');
  }
}

$('start').addEventListener('click', () => (app.running ? stop() : start()));
$('mute').addEventListener('click', () => {
  app.muted = !app.muted;
  $('mute').setAttribute('aria-pressed', String(app.muted));
  $('mute').textContent = app.muted ? 'Unmute microphone' : 'Mute microphone';
});
$('interrupt').addEventListener('click', () => {
  if (app.ws && app.live) app.ws.send(JSON.stringify({ type: 'interrupt' }));
});
$('talker').addEventListener('change', () => {
  if (app.ws && app.live) app.ws.send(JSON.stringify({ type: 'talker', name: $('talker').value }));
});
$('text-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = $('text').value.trim();
  if (!text || !app.ws || !app.live) return;
  app.ws.send(JSON.stringify({ type: 'text', text }));
  app.typed = text;
  $('text').value = '';
});
$('clip-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const file = $('clip').files[0];
  if (file) sendClip(file); else say('Choose a clip first.', 'warn');
});
document.addEventListener('keydown', (event) => {
  if (event.key === 'Escape' && app.ws && app.live) app.ws.send(JSON.stringify({ type: 'interrupt' }));
});
setInterval(() => { reportPlayback(); updateState(); }, 100);
loadInfo();
updateState();
