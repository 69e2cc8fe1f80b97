/**
 * Help text conventions, the same for every command: defaults are shown by commander as `(default: …)`, including
 * defaults computed at run time (declared with computedDefault / modelArgument, never written into a description),
 * required options say `(required)`, and every command ends with an Examples section (EXAMPLES below).
 */
import { Argument, Help, Option, type Command } from 'commander';

/** An option whose default is worked out at run time: the value stays undefined, the help shows `what`. */
export function computedDefault(flags: string, description: string, what: string): Option {
  return new Option(flags, description).default(undefined, what);
}

/** The optional MODEL argument of the commands that default to the bundled model. */
export function modelArgument(name = 'model', description = 'Hugging Face folder, .gguf, llama2.c .bin, or a train run folder (its model/)'): Argument {
  return new Argument(`[${name}]`, description).default(undefined, 'the bundled stories260K');
}

const withExtras = (text: string, extras: string[]): string => (extras.length ? `${text} (${extras.join(', ')})`.trim() : text);

/** Commander's help, plus the computed defaults (commander shows a default only when it has a value) and `(required)`. */
export const helpConfiguration: Partial<Help> = {
  optionDescription(this: Help, option: Option): string {
    const computed = option.defaultValue === undefined && option.defaultValueDescription ? [`default: ${option.defaultValueDescription}`] : [];
    return withExtras(Help.prototype.optionDescription.call(this, option), [...computed, ...(option.mandatory ? ['required'] : [])]);
  },
  argumentDescription(this: Help, argument: Argument): string {
    const computed = argument.defaultValue === undefined && argument.defaultValueDescription ? [`default: ${argument.defaultValueDescription}`] : [];
    return withExtras(Help.prototype.argumentDescription.call(this, argument), computed);
  },
};

const TEXT = 'data/tinystories-valid-excerpt/tinystories_val.txt';

/** Examples per command path; the CLI test checks that every command has some. */
export const EXAMPLES: Record<string, string[]> = {
  'info': ['recurformer info --json'],
  'generate': [
    'recurformer generate --prompt "Once upon a time" -n 100 --temperature 0.8 --seed 1',
    'echo "Once upon a time" | recurformer generate --prompt - --temperature 0 --json',
    'recurformer generate stories-50 --prompt-file prompt.txt --memory streaming --window 64',
  ],
  'inspect': ['recurformer inspect', 'recurformer inspect model.gguf --check-weights --json'],
  'eval': ['recurformer eval ppl --data FILE --ctx 256', 'recurformer eval passkey stories-50 --out runs/passkey.json'],
  'eval ppl': [
    `recurformer eval ppl --data ${TEXT} --ctx 256`,
    'recurformer eval ppl stories-50 --data corpus/ --ctx 256 --stride 64 --out runs/ppl.json',
    'recurformer eval ppl --data FILE --memory streaming --equal-cache stories-50 --json',
  ],
  'eval passkey': ['recurformer eval passkey stories-50 --lengths 256,480 --samples 10 --out runs/passkey.json',
    'recurformer eval passkey --memory streaming --equal-cache stories-50'],
  'eval hashhop': ['recurformer eval hashhop stories-50 --hops 1,2,3 --json', 'recurformer eval hashhop models/demo-llama --alphabet digits --hops 1,2 --lengths 256,1024,2000'],
  'eval needle': ['recurformer eval needle --haystack data/gutenberg/frankenstein_pg84.txt --depths 0,0.5,1'],
  'eval agree': ['recurformer eval agree stories-50 --teacher models/stories260K --data FILE --ctx 256 --max-tokens 20000'],
  'eval cost': ['recurformer eval cost stories-50 --lengths 1024,4096,16384 --out runs/cost.json'],
  'eval report': ['recurformer eval report runs/*.json --out runs/report.html --title "hybrid vs baselines"'],
  'export': ['recurformer export --format gguf --dtype F16 --out stories260K.gguf', 'recurformer export train-run --out hf-folder'],
  'analyze': [`recurformer analyze --data ${TEXT} --out an`, 'recurformer analyze models/demo-llama --data corpus/ --retrieval-probe --out an-demo'],
  'convert': ['recurformer convert --analysis an/analysis.json --budget 0.5 --out stories-50',
    'recurformer convert --plan edited-plan.json --data calib.txt --out stories-edited',
    'recurformer convert --analysis an/analysis.json --budget 0.5 --head-kind recurrent+window --head-window 64 --out stories-50rw'],
  'serve': ['recurformer serve --port 8080', 'recurformer serve stories-50 --host 0.0.0.0 --api-key SECRET'],
  'train': [
    'recurformer train stories-50 --teacher models/stories260K --data data/tinystories-valid-excerpt/tinystories_val.txt --stage align --steps 200 --out run',
    'recurformer train conv50 --teacher models/demo-llama --data corpus/ --config recipes/demo-llama-distill.json --set lr=3e-4 --out run2',
    'recurformer train run/model --teacher models/stories260K --data corpus/ --config distill.json --steps 800 --set ceWeight=0.2 --set min-lr=0.05 --out run3',
    'recurformer train --resume run',
  ],
};

/** The command's path below the program, e.g. "eval ppl". */
function pathOf(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** Appends each command's examples to its help (walks the whole tree, so subcommands get theirs). */
export function addExamples(cmd: Command): void {
  for (const sub of cmd.commands) {
    const lines = EXAMPLES[pathOf(sub)];
    if (lines) sub.addHelpText('after', `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`);
    addExamples(sub);
  }
}
