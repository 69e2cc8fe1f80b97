/** Child-process entry for the kill -9 test: runs the CLI with the arguments in RF_ARGS (JSON). */
import { main } from '../../src/cli/main.js';

process.exitCode = await main(JSON.parse(process.env.RF_ARGS ?? '[]') as string[]);
