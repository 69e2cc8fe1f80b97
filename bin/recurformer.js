#!/usr/bin/env node
// Thin shim: the CLI lives in src/cli/main.ts (compiled to dist/ by `npm install` via the prepare script).
import { main } from '../dist/src/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
