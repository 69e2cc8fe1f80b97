/**
 * The playground at `/`: one self-contained page (inline CSS and JS, no external resources) to chat with the
 * model, watch tokens stream, and chart the running session's cache bytes against what full attention would hold
 * at the same length. It uses the same streaming API as any client, asking for `cache_stats` in each chunk.
 */

const STYLE = `
body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:980px;margin:0 auto;padding:16px;display:grid;grid-template-columns:1fr 380px;gap:16px}
h1{font-size:18px;margin:0 0 8px}#log{background:#fff;border:1px solid #d8dce3;border-radius:8px;padding:10px;
height:420px;overflow:auto;white-space:pre-wrap}.user{color:#2656a8;margin:6px 0}.assistant{margin:6px 0 12px}
form{display:flex;gap:8px;margin-top:8px}textarea{flex:1;height:56px;font:inherit}button{font:inherit;padding:0 16px}
.side{background:#fff;border:1px solid #d8dce3;border-radius:8px;padding:10px}label{display:block;margin:4px 0}
input[type=number]{width:80px}#stats{font-size:13px;color:#4a5263;white-space:pre-line}#err{color:#b00020}
.key{display:inline-block;width:18px;height:3px;vertical-align:middle;margin-right:4px}`;

/** The page script, as plain browser JS (kept small: no framework, one fetch per turn). */
const SCRIPT = `
const $ = (id) => document.getElementById(id);
const MODEL = document.body.dataset.model;
const params = new URLSearchParams(location.search);
const apiKey = params.get('api_key');
if (apiKey) history.replaceState(null, '', location.pathname); // keep the key out of the address bar
const history_ = [];
let points = [];

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

async function send(ev) {
  ev.preventDefault();
  const text = $('prompt').value.trim();
  if (!text) return;
  $('prompt').value = ''; $('send').disabled = true; $('err').textContent = '';
  history_.push({ role: 'user', content: text });
  addTurn('user', text);
  const out = addTurn('assistant', '');
  out.dataset.testid = 'reply';
  points = []; draw();
  let reply = '', tokens = 0; const t0 = performance.now();
  try {
    const headers = { 'content-type': 'application/json' };
    if (apiKey) headers.authorization = 'Bearer ' + apiKey;
    const res = await fetch('/v1/chat/completions', { method: 'POST', headers, body: JSON.stringify({
      model: MODEL, messages: history_, stream: true, cache_stats: true,
      max_tokens: Number($('max').value), temperature: Number($('temp').value) }) });
    if (!res.ok) throw new Error((await res.json()).error.message);
    const reader = res.body.getReader(), dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\\n\\n')) >= 0) {
        const line = buf.slice(0, i); buf = buf.slice(i + 2);
        if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
        const chunk = JSON.parse(line.slice(6));
        if (chunk.error) throw new Error(chunk.error.message);
        const delta = chunk.choices[0] && chunk.choices[0].delta.content;
        if (delta) { reply += delta; out.textContent = reply; $('log').scrollTop = 1e9; }
        if (chunk.cache) {
          tokens++;
          points.push({ tokens: chunk.cache.tokens, bytes: chunk.cache.bytes, full: chunk.cache.full_attention_bytes });
          const p = points[points.length - 1];
          $('stats').textContent = 'memory: ' + chunk.cache.memory_kind + '\\ntokens in cache: ' + p.tokens +
            '\\ncache bytes: ' + p.bytes + '\\nfull attention: ' + p.full +
            '\\nspeed: ' + (tokens / ((performance.now() - t0) / 1000)).toFixed(1) + ' tokens/s';
          $('chart').dataset.points = String(points.length);
          draw();
        }
      }
    }
    history_.push({ role: 'assistant', content: reply });
  } catch (e) {
    $('err').textContent = 'Error: ' + e.message;
    history_.pop();
  } finally {
    $('send').disabled = false;
  }
}

$('form').addEventListener('submit', send);
$('prompt').addEventListener('keydown', (e) => { if (e.key === 'Enter' && !e.shiftKey) $('form').requestSubmit(); });
draw();
`;

const escapeHtml = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

export function playgroundHtml(modelId: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>recurformer playground</title><link rel="icon" href="data:,"><style>${STYLE}</style></head>
<body data-model="${escapeHtml(modelId)}"><main>
<section><h1>recurformer playground: ${escapeHtml(modelId)}</h1>
<div id="log" aria-live="polite"></div>
<form id="form"><textarea id="prompt" placeholder="Say something (Enter sends)"></textarea>
<button id="send" type="submit">Send</button></form><div id="err"></div></section>
<aside class="side"><h1>Cache</h1>
<canvas id="chart" width="360" height="220" data-points="0"></canvas>
<div><span class="key" style="background:#2656a8"></span>cache bytes held
<span class="key" style="background:#d9822b;margin-left:10px"></span>full attention</div>
<div id="stats">no session yet</div>
<label>max tokens <input id="max" type="number" min="1" max="512" value="128"></label>
<label>temperature <input id="temp" type="number" min="0" max="2" step="0.1" value="0.8"></label>
</aside></main>
<script>${SCRIPT}</script></body></html>
`;
}
