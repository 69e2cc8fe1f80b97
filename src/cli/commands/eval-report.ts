/** `recurformer eval report FILES... --out report.html`: one HTML page from EvalRecord JSON files (src/report/eval-report.ts). */
import { existsSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { EvalRecord } from '../../eval/record.js';
import { writeFileAtomic } from '../../io/tensor-file.js';
import { checkEvalRecord, renderEvalReport } from '../../report/eval-report.js';
import { ArgumentError, FormatError } from '../../tensor/errors.js';
import { prepareOutFile, writingTo } from '../output.js';

/** Reads and checks one record file (a FormatError naming the file when it is not JSON or not a record). */
export function readEvalRecord(file: string): EvalRecord {
  if (!existsSync(file)) throw new ArgumentError('eval report', 'FILES', `${file} does not exist`);
  let x: unknown;
  try {
    x = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new FormatError(file, `is not valid JSON (${(e as Error).message})`, 'pass files written by `recurformer eval <task> --out FILE`');
  }
  return checkEvalRecord(x, file);
}

export function registerEvalReport(ev: Command): void {
  ev.command('report')
    .description('render EvalRecord JSON files (from eval <task> --out) as one self-contained HTML page')
    .argument('<files...>', 'EvalRecord JSON files')
    .requiredOption('--out <file>', 'the HTML page to write (atomically; missing folders are created)')
    .option('--title <text>', 'page title', 'recurformer evaluation')
    .action(async (files: string[], o: { out: string; title: string }) => {
      prepareOutFile('eval report', '--out', o.out);
      const records = files.map(readEvalRecord);
      const page = await renderEvalReport(records, o.title);
      writingTo('eval report', '--out', o.out, () => writeFileAtomic(o.out, new TextEncoder().encode(page)));
      process.stdout.write(`wrote ${o.out} (${records.length} records)\n`);
    });
}
