// libfaketime for runs "hours later" through the built CLI: whether it works on this machine, and its library for LD_PRELOAD.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

/** Runs Node under `faketime` 60 s ahead once: undefined when its clock was moved, else what went wrong. */
function probeOnce(): string | undefined {
  const before = Date.now();
  const probe = spawnSync('faketime', ['-f', '+60s', process.execPath, '-e', 'process.stdout.write(String(Date.now()))'], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  if (probe.error) return probe.error.message;
  if (probe.status !== 0) return `exit ${String(probe.status)}${probe.signal ? ` (${probe.signal})` : ''}: ${probe.stderr.trim().slice(0, 200)}`;
  const aheadMs = Number(probe.stdout) - before;
  return aheadMs > 50_000 ? undefined : `its clock was ${aheadMs} ms ahead, not 60 s`;
}

// Tried up to three times: under a loaded test run one start of Node under libfaketime has been seen to fail, which
// skipped a whole suite.
const problems: string[] = [];
for (let tries = 0; tries < 3; tries += 1) {
  const problem = probeOnce();
  if (problem === undefined) break;
  problems.push(problem);
}

/** True when `faketime` runs Node with a moved clock here (installed, and Node honours it). */
export const faketimeWorks = problems.length < 3;
/** Why faketime does not work here (for the skip message), or undefined. */
export const faketimeProblem = faketimeWorks ? undefined : problems.join('; ');

/** The library itself, for a child started with LD_PRELOAD and FAKETIME (a process signalled by its own pid). */
export const LIBFAKETIME = [
  '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1',
  '/usr/lib/faketime/libfaketime.so.1',
  '/usr/local/lib/faketime/libfaketime.so.1',
].find((file) => fs.existsSync(file));
