/**
 * The playground's context policy, as plain browser JS (inlined into the page; test/server/playground-html.test.ts
 * runs this same text in a VM). The page has no tokenizer, so it estimates a conversation's tokens from what the
 * server counted before: each reply's `usage` gives the exact prompt and completion counts, and a refused prompt's
 * error names its count. Before a send, the oldest turns are dropped (a system message stays, the new message always
 * goes) until the estimate leaves room for the reply; the server's count stays the judge: a prompt it still refuses
 * drops another turn, and a message that does not fit even alone is refused.
 *
 * A message is `{ role, content, tokens? }`; `tokens` is set once the server's counts cover it.
 * `calib` is `{ rate, perMessage }`: tokens per character of a message not yet counted, and the chat template's
 * tokens around each message.
 */
export const POLICY_JS = String.raw`
/** Tokens of one message: the server's count once known, else characters x rate plus the template's share. */
function messageTokens(m, calib) {
  return typeof m.tokens === 'number' ? m.tokens : Math.ceil(m.content.length * calib.rate) + calib.perMessage;
}

function conversationTokens(messages, calib) {
  let n = 0;
  for (const m of messages) n += messageTokens(m, calib);
  return n;
}

/**
 * Removes the oldest turn in place: the first message that is not a system message, with the replies after it up to
 * the next user or system message. Never the last message. Returns the removed messages ([] when none can go).
 */
function dropOldestTurn(messages) {
  const i = messages.findIndex((m) => m.role !== 'system');
  if (i < 0 || i >= messages.length - 1) return [];
  let j = i + 1;
  while (j < messages.length - 1 && messages[j].role !== 'user' && messages[j].role !== 'system') j++;
  return messages.splice(i, j - i);
}

/** Tokens kept free for the reply: the max-tokens setting, at most half the context. */
function replyReserve(context, maxTokens) {
  return Math.max(0, Math.min(maxTokens, Math.floor(context / 2)));
}

/**
 * What to send: the conversation less its oldest turns, until the estimate fits the context less the reply's
 * reserve. Returns { keep, dropped, estimate, budget, fits }; fits is false when even the system messages and the
 * last message are estimated over the budget (the server decides then).
 */
function fitConversation(messages, context, maxTokens, calib) {
  const keep = messages.slice(), dropped = [];
  const budget = context - replyReserve(context, maxTokens);
  while (conversationTokens(keep, calib) > budget) {
    const d = dropOldestTurn(keep);
    if (d.length === 0) break;
    dropped.push(...d);
  }
  const estimate = conversationTokens(keep, calib);
  return { keep, dropped, estimate, budget, fits: estimate <= budget };
}

/**
 * Learns from the server's exact count of a prompt: promptTokens for the messages sent (usage.prompt_tokens, or the
 * count a context_length_exceeded error names). The messages not yet counted share what the counted ones leave, by
 * length, and the rate per character follows them.
 */
function calibrate(sent, promptTokens, calib) {
  const open = sent.filter((m) => typeof m.tokens !== 'number');
  if (open.length === 0 || !(promptTokens > 0)) return;
  let known = 0, chars = 0;
  for (const m of sent) if (typeof m.tokens === 'number') known += m.tokens;
  for (const m of open) chars += m.content.length;
  const rest = Math.max(open.length, promptTokens - known);
  let left = rest;
  open.forEach((m, k) => {
    const share = k === open.length - 1 ? left : Math.round(rest * (m.content.length + 1) / (chars + open.length));
    m.tokens = Math.max(1, share);
    left -= share;
  });
  if (chars >= 16 && rest > calib.perMessage * open.length) {
    calib.rate = Math.min(4, Math.max(0.05, (rest - calib.perMessage * open.length) / chars));
  }
}
`;
