import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Rows "| file | bytes | sha256 | ..." of a SOURCE.md table. */
function sourceRows(md: string): { file: string; bytes: number; sha256: string }[] {
  const rows = [];
  for (const line of md.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    if (cells.length > 4 && /^[0-9a-f]{64}$/.test(cells[3]!)) rows.push({ file: cells[1]!, bytes: Number(cells[2]!.replaceAll(',', '')), sha256: cells[3]! });
  }
  return rows;
}

for (const root of ['data', 'test/fixtures']) {
  test(`${root}: every file listed in a SOURCE.md that is present has the listed size and sha256`, () => {
    let checked = 0;
    for (const dir of readdirSync(root)) {
      const src = join(root, dir, 'SOURCE.md');
      if (!statSync(join(root, dir)).isDirectory() || !existsSync(src)) continue;
      for (const row of sourceRows(readFileSync(src, 'utf8'))) {
        const p = join(root, dir, row.file);
        if (!existsSync(p)) continue;
        const buf = readFileSync(p);
        assert.equal(buf.byteLength, row.bytes, p);
        assert.equal(createHash('sha256').update(buf).digest('hex'), row.sha256, p);
        checked++;
      }
    }
    assert.ok(checked >= (root === 'data' ? 8 : 7), `checked ${checked} files`);
  });
}

test('data/ stays small enough to ship (< 15 MB)', () => {
  let total = 0;
  for (const dir of readdirSync('data')) {
    if (!statSync(join('data', dir)).isDirectory()) continue;
    for (const f of readdirSync(join('data', dir))) total += statSync(join('data', dir, f)).size;
  }
  assert.ok(total < 15e6, `${total} bytes`);
});
