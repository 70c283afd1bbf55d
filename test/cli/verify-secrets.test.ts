import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from '@jest/globals';
import { signBody } from '../../src/webhooks/sign.js';
import { standardHeaders } from '../../src/webhooks/standard-signature.js';
import { runCli, startListen } from '../helpers/cli.js';
import { verifyJson } from '../helpers/json-shapes.js';
import { tempDir } from '../helpers/temp-dir.js';
import { workspace } from '../helpers/workspace.js';

// `verify` and `listen` take several --secret values (a rotation's old and new) and Standard Webhooks headers, and say which matched.
const BODY = '{"event_type":"license.expiring","timestamp":"2025-01-23T10:00:00Z","payload":{"license_id":1}}';
const OLD = 'old-secret-value';
const NEW = 'new-secret-value';

function bodyFile(): string {
  const cwd = tempDir();
  fs.writeFileSync(path.join(cwd, 'body.json'), BODY);
  return cwd;
}

describe('verify with several secrets', () => {
  test('X-Webhook-Signature made with the old secret: valid, and says it was the second secret', async () => {
    const cwd = bodyFile();
    const signature = signBody(BODY, OLD);
    const text = await runCli(['verify', '--secret', NEW, '--secret', OLD, '--signature', signature, '--file', 'body.json'], { cwd });
    expect([text.code, text.stdout]).toEqual([0, 'valid (X-Webhook-Signature, secret 2)\n']);
    const json = await runCli(['verify', '--secret', NEW, '--secret', OLD, '--signature', signature, '--file', 'body.json', '--json'], { cwd });
    expect(JSON.parse(json.stdout)).toMatchObject({ valid: true, scheme: 'botble', secret: 2 });
    // One secret: the output of before, word for word.
    const one = await runCli(['verify', '--secret', OLD, '--signature', signature, '--file', 'body.json', '--json'], { cwd });
    expect(Object.keys(JSON.parse(one.stdout)).sort()).toEqual(['expected', 'explanation', 'valid', 'verdict']);
    const none = await runCli(['verify', '--secret', NEW, '--secret', 'third-secret', '--signature', signature, '--file', 'body.json'], { cwd });
    expect(none.code).toBe(1);
  });

  test('Standard Webhooks headers: the v1 list of a rotation verifies with either secret and names it', async () => {
    const cwd = bodyFile();
    const timestamp = Math.floor(Date.now() / 1000);
    const headers = standardHeaders({ eventId: 'evt-1', body: BODY }, [NEW, OLD], timestamp);
    const args = ['verify', '--signature', headers['webhook-signature']!, '--id', 'evt-1', '--timestamp', String(timestamp), '--file', 'body.json'];
    const withOld = await runCli([...args, '--secret', OLD], { cwd });
    expect([withOld.code, withOld.stdout]).toEqual([0, 'valid (Standard Webhooks, secret 1)\n']);
    const both = await runCli([...args, '--secret', 'another-secret', '--secret', NEW, '--json'], { cwd });
    expect(JSON.parse(both.stdout)).toMatchObject({ valid: true, scheme: 'standard', secret: 2 });
    const wrong = await runCli([...args, '--secret', 'another-secret'], { cwd });
    expect([wrong.code, wrong.stderr]).toEqual([1, expect.stringContaining('No signature in webhook-signature matches')]);
  });

  test('Standard Webhooks verdicts as they are: too-old names the secret that matched, no-match names none', async () => {
    const cwd = bodyFile();
    const hourAgo = Math.floor(Date.now() / 1000) - 3601;
    const headers = standardHeaders({ eventId: 'evt-1', body: BODY }, [OLD], hourAgo);
    const args = ['verify', '--signature', headers['webhook-signature']!, '--id', 'evt-1', '--timestamp', String(hourAgo), '--file', 'body.json', '--json'];
    const stale = await runCli([...args, '--secret', OLD], { cwd });
    expect(stale.code).toBe(1);
    expect(verifyJson.parse(JSON.parse(stale.stdout))).toMatchObject({ valid: false, verdict: 'too-old', scheme: 'standard', secret: 1 });
    const second = await runCli([...args, '--secret', NEW, '--secret', OLD], { cwd });
    expect(JSON.parse(second.stdout)).toMatchObject({ valid: false, verdict: 'too-old', secret: 2 });
    const wrong = await runCli([...args, '--secret', NEW], { cwd });
    expect([wrong.code, JSON.parse(wrong.stdout)]).toEqual([1, expect.objectContaining({ valid: false, verdict: 'no-match', secret: null })]);
  });

  test('a v1 signature without --id or --timestamp, or --id with a hex signature: exit 2 saying what is needed', async () => {
    const cwd = bodyFile();
    const missing = await runCli(['verify', '--secret', OLD, '--signature', 'v1,abc=', '--file', 'body.json'], { cwd });
    expect([missing.code, missing.stderr]).toEqual([2, expect.stringContaining('add --id <webhook-id> --timestamp <seconds>')]);
    const extra = await runCli(['verify', '--secret', OLD, '--signature', signBody(BODY, OLD), '--id', 'x', '--file', 'body.json'], { cwd });
    expect([extra.code, extra.stderr]).toEqual([2, expect.stringContaining('--id and --timestamp go with a Standard Webhooks signature')]);
  });
});

describe('verify with bad input', () => {
  test('an empty secret, a --timestamp that is not seconds, a malformed whsec_ secret: exit 2 up front, naming it', async () => {
    const cwd = bodyFile();
    const timestamp = Math.floor(Date.now() / 1000);
    const v1 = standardHeaders({ eventId: 'evt-1', body: BODY }, [OLD], timestamp)['webhook-signature']!;
    const standard = ['verify', '--signature', v1, '--id', 'evt-1', '--file', 'body.json'];
    const bad = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
      const result = await runCli(args, { cwd, env });
      return [result.code, result.stdout, result.stderr];
    };
    expect(await bad(['verify', '--secret', '', '--signature', signBody(BODY, OLD), '--file', 'body.json'])).toEqual([
      2,
      '',
      expect.stringContaining('--secret must not be empty.'),
    ]);
    expect(await bad([...standard, '--secret', OLD, '--timestamp', 'abc'])).toEqual([
      2,
      '',
      expect.stringContaining('--timestamp "abc" is not whole Unix seconds'),
    ]);
    // Secret 1 matches; the second cannot be a Standard Webhooks key, which is a mistake to say, not a signature that fails.
    const whsec = ['--secret', OLD, '--secret', 'whsec_!!!', '--timestamp', String(timestamp)];
    expect(await bad([...standard, ...whsec])).toEqual([
      2,
      '',
      expect.stringContaining('--secret (the 2nd of 2) starts with "whsec_" but the rest is not standard base64'),
    ]);
    expect(await bad([...standard, '--secret-env', 'RECEIVER_SECRET', '--timestamp', String(timestamp)], { RECEIVER_SECRET: 'whsec_!!!' })).toEqual([
      2,
      '',
      expect.stringContaining('--secret-env RECEIVER_SECRET: the secret starts with "whsec_"'),
    ]);
    // X-Webhook-Signature signs with any secret's text: there the same secret is one more to try.
    expect(await bad(['verify', '--secret', 'whsec_!!!', '--secret', OLD, '--signature', signBody(BODY, OLD), '--file', 'body.json'])).toEqual([
      0,
      'valid (X-Webhook-Signature, secret 2)\n',
      '',
    ]);
  });
});

describe('listen with several secrets', () => {
  test('a request signed only the Standard Webhooks way: its id from webhook-id, and its own verdict (too-old names the secret)', async () => {
    const listener = await startListen(['--json', '--secret', NEW, '--secret', OLD], tempDir());
    try {
      const post = async (eventId: string, timestamp: number) => {
        const headers = standardHeaders({ eventId, body: BODY }, [OLD], timestamp);
        return (await fetch(listener.url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: BODY })).status;
      };
      const now = Math.floor(Date.now() / 1000);
      expect(await post('evt-fresh', now)).toBe(200);
      expect(await post('evt-stale', now - 3601)).toBe(401);
      const started = Date.now();
      while (listener.jsonLines().length < 3 && Date.now() - started < 5000) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(
        listener
          .jsonLines()
          .slice(1)
          .map((line) => [line.id, line.signature, line.status]),
      ).toEqual([
        ['evt-fresh', 'valid', 200],
        ['evt-stale', 'too-old', 401],
      ]);
    } finally {
      expect(await listener.stop()).toBe(0);
    }
  });

  test('accepts either secret and Standard headers, and says which scheme and secret matched', async () => {
    const ws = workspace({});
    await ws.ready();
    const listener = await startListen(['--json', '--secret', NEW, '--secret', OLD], ws.dir);
    try {
      const lines = () => listener.jsonLines();
      expect((await ws.cli(['send-test-event', '--url', listener.url, '--secret', OLD])).code).toBe(0);
      const whsec = `whsec_${Buffer.alloc(32, 5).toString('base64')}`;
      expect((await ws.cli(['endpoints', 'add', 'std', '--url', listener.url, '--secret', OLD, '--signing', 'standard'])).code).toBe(0);
      expect((await ws.cli(['send-test-event', '--endpoint', 'std'])).code).toBe(0);
      expect((await ws.cli(['endpoints', 'update', 'std', '--secret', whsec])).code).toBe(0);
      // Neither secret: refused with 401, as a receiver must.
      expect((await ws.cli(['send-test-event', '--endpoint', 'std'])).code).toBe(3);
      const started = Date.now();
      while (lines().length < 4 && Date.now() - started < 5000) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(
        lines()
          .slice(1)
          .map((line) => [line.status, line.scheme, line.secret]),
      ).toEqual([
        [200, 'botble', 2],
        [200, 'standard', 2],
        [401, undefined, undefined],
      ]);
    } finally {
      expect(await listener.stop()).toBe(0);
    }
  });
});
