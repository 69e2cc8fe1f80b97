/**
 * The playground page's script, as plain browser JS (no framework, one fetch per turn). It reads the model's id and
 * context from /v1/models, streams each reply with `cache_stats` (charted against full attention), and keeps the
 * conversation inside the context with the policy of ./policy.ts. New chat starts over; Stop aborts the streaming
 * request, which cancels the session on the server.
 */
export const PAGE_JS = String.raw`
const $ = (id) => document.getElementById(id);
let MODEL = document.body.dataset.model;
const params = new URLSearchParams(location.search);
const apiKey = params.get('api_key');
if (apiKey) history.replaceState(null, '', location.pathname); // keep the key out of the address bar
/** The model's context in tokens, from /v1/models (0 while unknown: the server's checks still apply). */
let context = 0;
const calib = { rate: 0.5, perMessage: 4 };
/** What the model sees next turn (no system message: that comes from its field): { role, content, tokens?, el? }. */
let conversation = [];
let systemMsg = null;
/** The streaming request's controller while one runs. */
let controller = null;
/** Bumped by New chat, so a request of the chat before leaves the new one alone. */
let chat = 0;
let points = [];
let droppedTotal = 0;

function headers() {
  const h = { 'content-type': 'application/json' };
  if (apiKey) h.authorization = 'Bearer ' + apiKey;
  return h;
}

function draw() {
  const c = $('chart'), g = c.getContext('2d');
  const W = c.width, H = c.height, L = 56, B = 24;
  g.clearRect(0, 0, W, H);
  g.strokeStyle = '#888'; g.beginPath(); g.moveTo(L, 4); g.lineTo(L, H - B); g.lineTo(W - 4, H - B); g.stroke();
  if (points.length === 0) return;
  const maxT = Math.max(...points.map((p) => p.tokens), 1);
  const maxY = Math.max(...points.map((p) => Math.max(p.bytes, p.full)), 1);
  const x = (t) => L + (W - L - 8) * t / maxT, y = (b) => H - B - (H - B - 8) * b / maxY;
  g.fillStyle = '#4a5263'; g.font = '11px sans-serif';
  g.fillText((maxY / 1024).toFixed(1) + ' KiB', 2, 12); g.fillText('0', L - 10, H - B);
  g.fillText(maxT + ' tokens', W - 70, H - 6);
  // held bytes first, the dashed full-attention line on top: for the KV cache the two coincide
  for (const [key, color, dash] of [['bytes', '#2656a8', []], ['full', '#d9822b', [6, 4]]]) {
    g.strokeStyle = color; g.lineWidth = 2; g.setLineDash(dash); g.beginPath();
    points.forEach((p, i) => (i ? g.lineTo(x(p.tokens), y(p[key])) : g.moveTo(x(p.tokens), y(p[key]))));
    g.stroke(); g.setLineDash([]);
  }
}

function addTurn(role, text) {
  const d = document.createElement('div');
  d.className = role; d.textContent = (role === 'user' ? 'You: ' : '') + text;
  $('log').appendChild(d); $('log').scrollTop = 1e9;
  return d;
}

function setBusy(busy) {
  $('send').disabled = busy; $('stop').disabled = !busy;
  document.body.dataset.state = busy ? 'streaming' : 'idle';
}

const plural = (n, one) => n + ' ' + one + (n === 1 ? '' : 's');

/** The max-tokens field as a number within 1 and the context. */
function maxTokens() {
  const v = Math.floor(Number($('max').value));
  const n = Math.max(1, Math.min(Number.isFinite(v) && v > 0 ? v : 128, context || Infinity));
  $('max').value = String(n);
  return n;
}

/** The system message from its field, the same object while the text stays (so its count is kept). */
function systemMessage() {
  const text = $('system').value.trim();
  if (!text) return null;
  if (!systemMsg || systemMsg.content !== text) systemMsg = { role: 'system', content: text };
  return systemMsg;
}

async function loadModel() {
  try {
    const res = await fetch('/v1/models', { headers: headers() });
    const body = await res.json();
    if (!res.ok) throw new Error(body.error ? body.error.message : res.statusText);
    const m = body.data.find((d) => d.id === MODEL) || body.data[0];
    if (!m) throw new Error('the server lists no model');
    MODEL = m.id;
    context = Number.isInteger(m.context_length) && m.context_length > 0 ? m.context_length : 0;
  } catch (e) {
    $('err').textContent = 'Could not read the model from /v1/models: ' + e.message;
  }
  document.title = MODEL + ' · recurformer playground';
  $('model').textContent = MODEL;
  if (context > 0) {
    $('max').max = String(context);
    $('ctx').textContent = 'context ' + context + ' tokens';
    if (Number($('max').value) > context) $('max').value = String(context);
  }
  document.body.dataset.context = String(context);
  setBusy(false);
}

/** The message cannot be sent even alone: say why, and give its text back to edit. */
function refuse(error, counted, text) {
  $('prompt').value = text;
  const with_ = systemMessage() ? ' with the system prompt and the chat template' : ' with the chat template';
  const ctx = /context of (\d+)/.exec(error.message);
  $('err').textContent = counted
    ? 'Not sent: this message does not fit the model\'s context even on its own: the server counted ' + counted +
      ' tokens' + with_ + ', and the context holds ' + (ctx ? ctx[1] : context) + '. Shorten it.'
    : 'Not sent: this message is too long even on its own (' + error.message + '). Shorten it.';
}

async function send(ev) {
  ev.preventDefault();
  if (controller) return;
  const text = $('prompt').value.trim();
  if (!text) return;
  const myChat = chat;
  $('err').textContent = ''; $('note').textContent = '';
  const max = maxTokens();
  const sys = systemMessage();
  const user = { role: 'user', content: text };
  let candidate = (sys ? [sys] : []).concat(conversation, [user]);
  let dropped = [];
  if (context > 0) {
    const fit = fitConversation(candidate, context, max, calib);
    candidate = fit.keep; dropped = fit.dropped;
  }
  $('prompt').value = '';
  setBusy(true);
  controller = new AbortController();
  const signal = controller.signal;
  let out = null, reply = '', tokens = 0, usage = null, committed = false;
  const t0 = performance.now();
  try {
    let res;
    for (;;) {
      res = await fetch('/v1/chat/completions', { method: 'POST', headers: headers(), signal, body: JSON.stringify({
        model: MODEL, messages: candidate.map((m) => ({ role: m.role, content: m.content })), stream: true,
        cache_stats: true, stream_options: { include_usage: true }, max_tokens: max,
        temperature: Number($('temp').value) }) });
      if (res.ok) break;
      const body = await res.json().catch(() => ({}));
      const error = body.error || { message: res.status + ' ' + res.statusText };
      if (error.code !== 'context_length_exceeded' && error.code !== 'prompt_too_long') throw new Error(error.message);
      // the server's count is exact: learn from it, then drop more (at least one more turn), or refuse
      const m = /has (\d+) tokens/.exec(error.message);
      const counted = m ? Number(m[1]) : 0;
      if (counted) calibrate(candidate, counted, calib);
      const refit = context > 0 ? fitConversation(candidate, context, max, calib) : { keep: candidate.slice(), dropped: [] };
      if (refit.dropped.length === 0) refit.dropped = dropOldestTurn(refit.keep);
      if (refit.dropped.length === 0) {
        refuse(error, counted, text);
        return;
      }
      candidate = refit.keep; dropped = dropped.concat(refit.dropped);
    }
    // accepted: the dropped turns leave the conversation for good (they stay on screen, faded)
    conversation = candidate.filter((m) => m.role !== 'system');
    committed = true;
    user.el = addTurn('user', text);
    out = addTurn('assistant', '');
    out.dataset.testid = 'reply';
    for (const m of dropped) if (m.el) m.el.classList.add('dropped');
    if (dropped.length > 0) {
      droppedTotal += dropped.length;
      document.body.dataset.dropped = String(droppedTotal);
      $('note').textContent = 'Dropped the oldest ' + plural(dropped.length, 'message') + ' (faded above; the model no ' +
        'longer sees them) so the conversation fits the context of ' + context + ' tokens with room for the reply.';
    }
    points = []; draw();
    const reader = res.body.getReader(), dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const line = buf.slice(0, i); buf = buf.slice(i + 2);
        if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
        const chunk = JSON.parse(line.slice(6));
        if (chunk.error) throw new Error(chunk.error.message);
        if (chunk.usage) usage = chunk.usage;
        const delta = chunk.choices[0] && chunk.choices[0].delta.content;
        if (delta) { reply += delta; out.textContent = reply; $('log').scrollTop = 1e9; }
        if (chunk.cache) {
          tokens++;
          points.push({ tokens: chunk.cache.tokens, bytes: chunk.cache.bytes, full: chunk.cache.full_attention_bytes });
          const p = points[points.length - 1];
          $('stats').textContent = 'memory: ' + chunk.cache.memory_kind + '\ntokens in cache: ' + p.tokens +
            (context ? ' of ' + context : '') + '\ncache bytes: ' + p.bytes + '\nfull attention: ' + p.full +
            '\nspeed: ' + (tokens / ((performance.now() - t0) / 1000)).toFixed(1) + ' tokens/s';
          $('chart').dataset.points = String(points.length);
          draw();
        }
      }
    }
    const answer = { role: 'assistant', content: reply, el: out };
    if (usage) {
      calibrate(candidate, usage.prompt_tokens, calib);
      answer.tokens = usage.completion_tokens + calib.perMessage;
    }
    conversation.push(answer);
  } catch (e) {
    if (myChat !== chat) return; // New chat dropped this request
    if (e.name === 'AbortError') {
      if (reply) {
        conversation.push({ role: 'assistant', content: reply, el: out });
        $('note').textContent = 'Stopped after ' + plural(tokens, 'token') + '.';
      } else {
        // nothing came back: the message is as good as unsent
        if (committed) { conversation.pop(); user.el.remove(); out.remove(); }
        $('prompt').value = text;
        $('note').textContent = 'Stopped before the reply began.';
      }
    } else {
      $('err').textContent = 'Error: ' + e.message;
      if (committed) { conversation.pop(); user.el.classList.add('dropped'); }
      if (!$('prompt').value) $('prompt').value = text;
    }
  } finally {
    if (myChat === chat) { controller = null; setBusy(false); }
  }
}

function newChat() {
  chat++;
  if (controller) controller.abort();
  controller = null;
  conversation = []; points = []; droppedTotal = 0;
  $('log').textContent = ''; $('err').textContent = ''; $('note').textContent = '';
  $('stats').textContent = 'no session yet'; $('chart').dataset.points = '0';
  document.body.dataset.dropped = '0';
  draw(); setBusy(false); $('prompt').focus();
}

$('form').addEventListener('submit', send);
$('stop').addEventListener('click', () => { if (controller) controller.abort(); });
$('new').addEventListener('click', newChat);
$('prompt').addEventListener('keydown', (e) => { if (e.key === 'Enter' && !e.shiftKey) $('form').requestSubmit(); });
draw();
loadModel();
`;
