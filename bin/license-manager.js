#!/usr/bin/env node
// The process's edge: signals, the exit status and the heap policy live here, everything else in dist/cli (the
// bundle of dist/src/cli/main.js that `npm run build` makes: see scripts/bundle.ts).
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';

// V8 lets the old generation grow to up to four times what survived the last full collection before it
// collects again, so a run's garbage piled up: a 10,000-event run peaked at 200 to 210 MB. Growing by half
// at most keeps that near 170 MB, for about 5% more time against an instant receiver. V8 reads the flag
// at each full collection, so setting it here, before any work, applies to the whole run. An operator's
// own choice on the node command line (`node --heap-growing-percent=N license-manager …`) wins; Node does
// not take this flag in NODE_OPTIONS.
if (!process.execArgv.some((arg) => /^--heap[-_]growing[-_]percent\b/.test(arg))) {
  v8.setFlagsFromString('--heap-growing-percent=50');
}

// A reader that goes away (`license-manager … | head -1`) takes the output with it, not the command: what nobody
// reads any more is dropped, and a run still records and sends what it must and exits with its own code. Node would
// end the process at the first write after the reader left, halfway through a run, with a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error) => {
    if (error.code !== 'EPIPE' && error.code !== 'ERR_STREAM_DESTROYED') throw error;
  });
}

// A checkout that was never built has no dist/: say so in one line, not a loader stack trace. Only the entry itself
// missing is that case (a part of the build missing beside it is not).
const entry = new URL('../dist/cli/main.js', import.meta.url);
const { main } = await import(entry.href).catch((error) => {
  if (error?.code !== 'ERR_MODULE_NOT_FOUND' || error.url !== entry.href) throw error;
  process.stderr.write(
    `license-manager: ${fileURLToPath(entry)} is missing: build it first with "npm run build" (npm run demo, npm test and npm run bench build it too).\n`,
  );
  process.exit(1);
});

const stop = new AbortController();
// First SIGINT/SIGTERM: stop claiming, let attempts in flight end and be recorded. A second one quits at
// once with 130 (128 + SIGINT), the shell's code for an interrupted command.
const onSignal = (signal) => {
  if (stop.signal.aborted) process.exit(130);
  stop.abort(signal);
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

process.exitCode = await main(process.argv, undefined, undefined, stop.signal);
process.off('SIGINT', onSignal);
process.off('SIGTERM', onSignal);
// The command is done: whatever it could not close (the timer or socket of a JS config that never settled)
// must not keep a cron job alive. Unref'd, so a process that ends on its own ends at once; output still
// being written to a slow pipe is let through first.
setTimeout(function exitWhenFlushed() {
  const unflushed = (stream) => stream.writableLength > 0 && !stream.destroyed;
  if (unflushed(process.stdout) || unflushed(process.stderr)) setTimeout(exitWhenFlushed, 100).unref();
  else process.exit();
}, 1000).unref();
