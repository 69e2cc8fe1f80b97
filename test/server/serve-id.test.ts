/** The model id `serve` reports: a training run's model/ folder is served under the run's name, not "model". */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { servedModelId } from '../../src/cli/commands/serve.js';

test('servedModelId: files lose their extension; a run folder\'s model/ takes the run\'s name', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-serveid-'));
  const run = join(dir, 'distill-50');
  mkdirSync(join(run, 'model'), { recursive: true });
  writeFileSync(join(run, 'checkpoint.bin'), '');
  assert.equal(servedModelId(join(run, 'model')), 'distill-50');
  assert.equal(servedModelId(join(run, 'model') + '/'), 'distill-50');
  mkdirSync(join(dir, 'plain', 'model'), { recursive: true });
  assert.equal(servedModelId(join(dir, 'plain', 'model')), 'model', 'a folder named model outside a run keeps its name');
  assert.equal(servedModelId('/x/stories.gguf'), 'stories');
  assert.equal(servedModelId('models/stories260K'), 'stories260K');
});
