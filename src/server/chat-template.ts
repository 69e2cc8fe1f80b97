/**
 * Chat prompts: the model's own Jinja chat template (tokenizer_config.json's `chat_template`, rendered by
 * @huggingface/jinja as transformers does), or DEFAULT_CHAT_TEMPLATE when the model ships none (stories260K is a
 * story model with no chat format).
 *
 * Special tokens are never parsed out of text (see io/tokenizer.ts), so a template's leading `{{ bos_token }}` is
 * cut from the rendered string and BOS is added by id instead.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
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

/** Reads the chat template beside a model (a Hugging Face folder), falling back to the default. */
export function loadChatTemplate(modelPath: string): ChatTemplate {
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
  const bos = tokenText(cfg.bos_token), eos = tokenText(cfg.eos_token);
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
