/**
 * What `npm run bench` and its bare loop in a process of its own (bench-pool-child.ts) share: the bodies' headers,
 * signed as the CLI signs them, the loop that posts them at a given concurrency, and a process's CPU time read from
 * /proc. Not a test: it measures.
 */
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import { Pool } from 'undici';

// The CLI signs every body with it (X-Webhook-Signature), and so do the bare loops.
export const SECRET = 'bench-secret';

/** The headers the CLI sends with a body (botble signing): the bare loops send the same, signed per body. */
export function signedHeaders(body: string, index: number): Record<string, string> {
  return {
    'Content-Type': 'application/json',
    Accept: 'application/json',
    'X-Webhook-Event': 'license.expiring',
    'X-Webhook-Id': `bench-${index}`,
    'User-Agent': 'LicenseManager-Webhook/1.0',
    'X-Webhook-Signature': createHmac('sha256', SECRET).update(body).digest('hex'),
  };
}

/** `concurrency` workers taking the next body until none is left; the wall time of the whole loop. */
export async function loop(bodies: readonly string[], concurrency: number, post: (body: string, index: number) => Promise<void>): Promise<number> {
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < bodies.length) {
      const index = next;
      next += 1;
      await post(bodies[index]!, index);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return performance.now() - started;
}

/** The same bodies and headers through an undici Pool of `concurrency` connections: what the transport allows. */
export async function barePool(url: string, bodies: readonly string[], concurrency: number): Promise<number> {
  const target = new URL(url);
  const pool = new Pool(target.origin, { connections: concurrency, keepAliveTimeout: 10_000 });
  try {
    return await loop(bodies, concurrency, async (body, index) => {
      const response = await pool.request({ path: target.pathname, method: 'POST', body, headers: signedHeaders(body, index) });
      await response.body.text();
    });
  } finally {
    await pool.close();
  }
}

/** CPU time used so far, in ms (user and system, the kernel's 10 ms ticks): all threads, and the main (JavaScript) thread alone. */
export interface CpuTimes {
  allMs: number;
  mainMs: number;
}

/** A process's CPU times from /proc, or null where there is none (or the process is gone). */
export function cpuTimes(pid: number): CpuTimes | null {
  const ticks = (file: string) => {
    const stat = fs.readFileSync(file, 'utf8');
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th of them.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  };
  try {
    return { allMs: ticks(`/proc/${pid}/stat`), mainMs: ticks(`/proc/${pid}/task/${pid}/stat`) };
  } catch {
    return null;
  }
}
