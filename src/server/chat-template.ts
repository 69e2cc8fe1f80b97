/**
 * Chat prompts: the model's own Jinja chat template (tokenizer_config.json's `chat_template` or GGUF's
 * `tokenizer.chat_template`, rendered by @huggingface/jinja as transformers does), or DEFAULT_CHAT_TEMPLATE when the model ships none (stories260K is a
 * story model with no chat format).
 *
 * Special tokens are never parsed out of text (see io/tokenizer.ts), so a template's leading `{{ bos_token }}` is
 * cut from the rendered string and BOS is added by id instead.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { ggufOpt, readGguf } from '../io/gguf.js';
import type { Tokenizer } from '../io/tokenizer.js';
import { FormatError } from '../tensor/errors.js';
import { badRequest } from './errors.js';

/**
 * The fallback: system text first, then "User: ..." / "Assistant: ..." lines, ending with "Assistant:" so the
 * model writes the reply. Plain text, so any base model can continue it.
 */
export const DEFAULT_CHAT_TEMPLATE = [
  '{% for m in messages %}',
  "{% if m.role == 'system' or m.role == 'developer' %}{{ m.content }}\n\n",
  "{% elif m.role == 'user' %}User: {{ m.content }}\n",
  '{% else %}Assistant: {{ m.content }}\n{% endif %}',
  '{% endfor %}',
  '{% if add_generation_prompt %}Assistant:{% endif %}',
].join('');

export interface ChatMessage {
  role: string;
  content: string;
}

export interface ChatTemplate {
  /** Where the template came from: a tokenizer_config.json path or 'default'. */
  readonly source: string;
  /** The prompt text for these messages (without the BOS token). */
  render(messages: readonly ChatMessage[]): string;
}

interface TokenizerConfig {
  chat_template?: string | { name: string; template: string }[];
  bos_token?: string | { content: string };
  eos_token?: string | { content: string };
}

const tokenText = (t: TokenizerConfig['bos_token']): string => (typeof t === 'string' ? t : t?.content ?? '');

/**
 * Reads a model's chat template: tokenizer_config.json in a Hugging Face folder, the `tokenizer.chat_template` key
 * of a GGUF file; the default otherwise. `tok` supplies BOS/EOS texts the config does not name.
 */
export function loadChatTemplate(modelPath: string, tok?: Tokenizer): ChatTemplate {
  const pieces = { bos: tok ? tok.idToPiece(tok.bosId) : '<s>', eos: tok ? tok.idToPiece(tok.eosId) : '</s>' };
  if (modelPath.endsWith('.gguf') && existsSync(modelPath)) {
    const src = ggufOpt(readGguf(modelPath, { tensors: false }), 'tokenizer.chat_template', 'string');
    return src ? makeChatTemplate(src, modelPath, pieces.bos, pieces.eos) : makeChatTemplate(DEFAULT_CHAT_TEMPLATE, 'default');
  }
  const file = existsSync(modelPath) && statSync(modelPath).isDirectory() ? join(modelPath, 'tokenizer_config.json') : '';
  let cfg: TokenizerConfig = {};
  if (file && existsSync(file)) {
    try {
      cfg = JSON.parse(readFileSync(file, 'utf8')) as TokenizerConfig;
    } catch (e) {
      throw new FormatError(file, `is not valid JSON (${(e as Error).message})`);
    }
  }
  let src = cfg.chat_template;
  if (Array.isArray(src)) src = src.find((t) => t.name === 'default')?.template ?? src[0]?.template;
  const bos = tokenText(cfg.bos_token) || pieces.bos, eos = tokenText(cfg.eos_token) || pieces.eos;
  const hasOwn = typeof src === 'string' && src.length > 0;
  return makeChatTemplate(hasOwn ? src as string : DEFAULT_CHAT_TEMPLATE, hasOwn ? file : 'default', bos, eos);
}

export function makeChatTemplate(source: string, origin: string, bos = '<s>', eos = '</s>'): ChatTemplate {
  let template: Template;
  try {
    template = new Template(source);
  } catch (e) {
    throw new FormatError(origin, `chat_template does not parse: ${(e as Error).message}`);
  }
  return {
    source: origin,
    render(messages) {
      let out: string;
      try {
        out = template.render({ messages, bos_token: bos, eos_token: eos, add_generation_prompt: true });
      } catch (e) {
        // templates reject some conversations on purpose (raise_exception: "roles must alternate")
        throw badRequest(`the chat template rejected the messages: ${(e as Error).message}`, 'messages', 'invalid_messages');
      }
      return bos && out.startsWith(bos) ? out.slice(bos.length) : out;
    },
  };
}
