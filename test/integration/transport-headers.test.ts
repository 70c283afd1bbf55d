// The run's transport (ofetch over undici's request, with plain headers and a plain abort signal) puts the same header
// bytes on the wire as ofetch over Node's own fetch, whose WHATWG Headers strip outer whitespace from values.
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { ofetch } from 'ofetch';
import { createTransport, type Transport } from '../../src/delivery/transport.js';
import { postOnce } from '../../src/webhooks/post.js';

/** A server that keeps each request's header lines exactly as they arrived, and answers 200. */
let server: net.Server;
let url: string;
const heads: string[] = [];
let transport: Transport;

beforeAll(async () => {
  server = net.createServer((socket) => {
    let data = '';
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString('latin1');
      const end = data.indexOf('\r\n\r\n');
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(data)?.[1] ?? 0);
      if (end === -1 || data.length < end + 4 + length) return;
      heads.push(data.slice(0, end));
      data = '';
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nOK');
      socket.end();
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  transport = createTransport();
});

afterAll(async () => {
  await transport.close();
  await new Promise((resolve) => server.close(resolve));
});

/** The request's header lines other than those each client adds its own way, as `name: value` with the name in lower case. */
function ours(head: string): string[] {
  return head
    .split('\r\n')
    .slice(1)
    .map((line) => {
      const colon = line.indexOf(':');
      return `${line.slice(0, colon).toLowerCase()}:${line.slice(colon + 1)}`;
    })
    .filter((line) => line.startsWith('x-'))
    .sort();
}

describe('header values on the wire', () => {
  const headers = {
    'X-Plain': 'value',
    'X-Padded': '  padded\t',
    'X-Tabbed': '\tleading tab',
    'X-Trailing': 'trailing  ',
    'X-Inner': 'in  ner\tspace',
    'X-Empty': '',
    'X-Only-Space': '   ',
  };

  test('the transport sends what Node’s fetch sends: outer whitespace removed, inner kept', async () => {
    const outcome = await postOnce(url, '{}', headers, { timeoutMs: 2000, fetch: transport.fetch });
    expect(outcome).toMatchObject({ statusCode: 200, transportError: null, responsePrefix: 'OK' });
    const viaGlobalFetch = await postOnce(url, '{}', headers, { timeoutMs: 2000, fetch: ofetch });
    expect(viaGlobalFetch).toMatchObject({ statusCode: 200, transportError: null });
    expect(heads).toHaveLength(2);
    const [transportHead, fetchHead] = heads.map(ours);
    expect(transportHead).toEqual(fetchHead);
    // What that is, spelled out (Node's fetch decides the spacing after the colon).
    expect(transportHead).toContain('x-padded: padded');
    expect(transportHead).toContain('x-inner: in  ner\tspace');
    expect(transportHead).toContain('x-trailing: trailing');
  });
});
