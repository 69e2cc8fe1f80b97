/** Runs a test body once per available backend (reference always; native when the addon is built). */
import { test } from 'node:test';
import { getBackend, setBackend, type BackendName } from '../../src/tensor/index.js';

export function availableBackends(): BackendName[] {
  const names: BackendName[] = ['reference'];
  try {
    getBackend('native');
    names.push('native');
  } catch {
    // addon not built: the native variants are skipped (test/tensor/native-available.test.ts reports it)
  }
  return names;
}

export function testBothBackends(name: string, fn: () => void | Promise<void>): void {
  for (const b of availableBackends()) {
    test(`${name} [${b}]`, async () => {
      setBackend(b);
      try {
        await fn();
      } finally {
        setBackend('reference');
      }
    });
  }
}
