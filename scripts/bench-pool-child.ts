/**
 * `npm run bench`'s bare undici Pool loop in a process of its own, as the CLI runs: started cold, beside the
 * receiver rather than in its process. Reads the bodies from a JSON file, posts them (bench-loops.ts), and prints
 * the loop's wall time and the CPU it took, in all threads and in the main thread. Not a test: it measures.
 *
 *   node dist/scripts/bench-pool-child.js <url> <bodies.json> <concurrency>
 */
import fs from 'node:fs';
import { barePool, cpuTimes } from './bench-loops.js';

const [url, file, concurrencyText] = process.argv.slice(2);
if (!url || !file || !concurrencyText) throw new Error('usage: bench-pool-child.js <url> <bodies.json> <concurrency>');
const bodies = JSON.parse(fs.readFileSync(file, 'utf8')) as string[];
const before = cpuTimes(process.pid);
const wallMs = await barePool(url, bodies, Number(concurrencyText));
const after = cpuTimes(process.pid);
const cpu = before && after ? { allMs: after.allMs - before.allMs, mainMs: after.mainMs - before.mainMs } : null;
console.log(JSON.stringify({ wallMs, cpu }));
