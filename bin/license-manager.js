#!/usr/bin/env node
// The process's edge: signals and the exit status live here, everything else in dist/src/cli.
import { main } from '../dist/src/cli/main.js';

const stop = new AbortController();
// First SIGINT/SIGTERM: stop claiming, let attempts in flight end and be recorded. A second one quits at
// once with 130 (128 + SIGINT), the shell's code for an interrupted command.
const onSignal = (signal) => {
  if (stop.signal.aborted) process.exit(130);
  stop.abort(signal);
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

process.exitCode = await main(process.argv, undefined, stop.signal);
process.off('SIGINT', onSignal);
process.off('SIGTERM', onSignal);
