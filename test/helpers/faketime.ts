// libfaketime for runs "hours later" through the built CLI: whether it works on this machine, and its library for LD_PRELOAD.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

const probe = spawnSync('faketime', ['-f', '+60s', process.execPath, '-e', 'process.stdout.write(String(Date.now()))'], { encoding: 'utf8' });

/** True when `faketime` runs Node with a moved clock here (installed, and Node honours it). */
export const faketimeWorks = probe.status === 0 && Number(probe.stdout) - Date.now() > 50_000;

/** The library itself, for a child started with LD_PRELOAD and FAKETIME (a process signalled by its own pid). */
export const LIBFAKETIME = [
  '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1',
  '/usr/lib/faketime/libfaketime.so.1',
  '/usr/local/lib/faketime/libfaketime.so.1',
].find((file) => fs.existsSync(file));
