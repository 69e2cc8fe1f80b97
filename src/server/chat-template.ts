/**
 * Chat prompts: the model's own Jinja chat template (tokenizer_config.json's `chat_template` or GGUF's
 * `tokenizer.chat_template`, rendered by @huggingface/jinja as transformers does), or DEFAULT_CHAT_TEMPLATE when the model ships none (stories260K is a
 * story model with no chat format).
 *
 * The rendered text is tokenized as transformers' apply_chat_template does: the template's own special tokens
 * (<|im_start|>, <start_of_turn>, its `{{ bos_token }}`) become their ids, and no BOS is added beyond what the
 * template writes. With `plainContent`, the messages' own text stays plain (a user who types "<|im_start|>" gets
 * the characters, not the control token).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { ggufOpt, readGguf } from '../io/gguf.js';
import { pushAll, type Tokenizer } from '../io/tokenizer.js';
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
  /** The prompt text for these messages, as the template writes it (BOS included when the template has it). */
  render(messages: readonly ChatMessage[]): string;
  /** The prompt's token ids: the rendered text with its special tokens as ids (see the module comment). */
  ids(messages: readonly ChatMessage[], tok: Tokenizer, o?: { plainContent?: boolean }): number[];
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
      return out;
    },
    ids(messages, tok, o = {}) {
      const text = this.render(messages);
      if (!o.plainContent) return tok.encode(text, { bos: false });
      // find each message's text in the rendered prompt, in order; those spans are encoded as plain text
      const ids: number[] = [];
      let at = 0;
      for (const m of messages) {
        const i = m.content ? text.indexOf(m.content, at) : -1;
        if (i < 0) continue;
        pushAll(ids, tok.encode(text.slice(at, i), { bos: false }));
        pushAll(ids, tok.encode(m.content, { bos: false, plain: true }));
        at = i + m.content.length;
      }
      pushAll(ids, tok.encode(text.slice(at), { bos: false }));
      return ids;
    },
  };
}
