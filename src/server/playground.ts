/**
 * The playground at `/`: one self-contained page (inline CSS and JS, no external resources) to chat with the
 * model, watch tokens stream, and chart the running session's cache bytes against what full attention would hold
 * at the same length. It uses the same API as any client: /v1/models for the model's id and context, and the
 * streaming chat route with `cache_stats` in each chunk. The page's script is ./playground/script.ts; its context
 * policy (drop the oldest turns to fit, refuse what cannot fit) is ./playground/policy.ts.
 */
import { POLICY_JS } from './playground/policy.js';
import { PAGE_JS } from './playground/script.js';

/** Responsive: one column below 720px, no fixed width wider than a phone, long words wrap. */
const STYLE = `
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:980px;margin:0 auto;padding:16px;display:grid;grid-template-columns:minmax(0,1fr) minmax(0,380px);gap:16px}
header{display:flex;align-items:center;justify-content:space-between;gap:8px;flex-wrap:wrap;margin:0 0 8px}
h1,h2{font-size:18px;margin:0;overflow-wrap:anywhere}h2{margin-bottom:8px}
#log{background:#fff;border:1px solid #d8dce3;border-radius:8px;padding:10px;height:420px;overflow:auto;
white-space:pre-wrap;overflow-wrap:anywhere}.user{color:#2656a8;margin:6px 0}.assistant{margin:6px 0 12px}
.dropped{opacity:.45}#note{font-size:13px;color:#4a5263;margin-top:4px}
form{display:flex;gap:8px;margin-top:8px}textarea{font:inherit;min-width:0;max-width:100%}#prompt{flex:1;height:56px}
.buttons{display:flex;flex-direction:column;gap:4px}button{font:inherit;padding:2px 14px}
.side{background:#fff;border:1px solid #d8dce3;border-radius:8px;padding:10px;min-width:0}
canvas{display:block;width:100%;max-width:360px;height:auto}label{display:block;margin:4px 0}
#system{display:block;width:100%;height:48px}input[type=number]{width:90px}
#stats{font-size:13px;color:#4a5263;white-space:pre-line}#err{color:#b00020;overflow-wrap:anywhere}
.key{display:inline-block;width:18px;height:3px;vertical-align:middle;margin-right:4px}.hint{font-size:13px;color:#4a5263}
@media (max-width:720px){main{grid-template-columns:minmax(0,1fr);padding:8px;gap:10px}#log{height:55vh}}`;

const escapeHtml = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/**
 * The page for the model the server serves as `modelId` (the name clients pass as `model`). The title and heading
 * show that id; the script confirms it, and reads the context, from /v1/models.
 */
export function playgroundHtml(modelId: string): string {
  const id = escapeHtml(modelId);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${id} · recurformer playground</title><link rel="icon" href="data:,"><style>${STYLE}</style></head>
<body data-model="${id}" data-state="loading"><main>
<section><header><h1>recurformer playground: <span id="model">${id}</span></h1>
<button id="new" type="button" title="forget the conversation and start over">New chat</button></header>
<div id="log" aria-live="polite"></div><div id="note" role="status"></div>
<form id="form"><textarea id="prompt" placeholder="Say something (Enter sends)" aria-label="message"></textarea>
<div class="buttons"><button id="send" type="submit" disabled>Send</button>
<button id="stop" type="button" disabled title="stop the reply">Stop</button></div></form>
<div id="err" role="alert"></div></section>
<aside class="side"><h2>Cache</h2>
<canvas id="chart" width="360" height="220" data-points="0"></canvas>
<div><span class="key" style="background:#2656a8"></span>cache bytes held
<span class="key" style="background:#d9822b;margin-left:10px"></span>full attention</div>
<div id="stats">no session yet</div>
<label>max tokens <input id="max" type="number" min="1" value="128"> <span id="ctx" class="hint"></span></label>
<label>temperature <input id="temp" type="number" min="0" max="2" step="0.1" value="0.8"></label>
<label>system prompt <textarea id="system" placeholder="optional; kept when old turns are dropped"></textarea></label>
</aside></main>
<script>${POLICY_JS}${PAGE_JS}</script></body></html>
`;
}
