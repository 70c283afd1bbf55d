import { describe, expect, test } from '@jest/globals';
import { newRunId, placeOfRun, runProvablyDead, type ProcessPlace } from '../../src/delivery/leases.js';

const here: ProcessPlace = { host: 'web-1', bootId: '6c2f7b9e-0d1a-4c55-9d35-3f7e2f6d1a01', pidNamespace: '4026531836', pid: 100 };
const dead = () => false;
const alive = () => true;
const runOf = (place: Partial<ProcessPlace>) => newRunId({ ...here, ...place });

describe('which runs are provably dead', () => {
  test('a run id names its host, pid, boot and PID namespace', () => {
    expect(placeOfRun(runOf({ pid: 4242 }))).toEqual({ ...here, pid: 4242 });
    expect(placeOfRun('web-1:4242:1a2b3c4d')).toBeUndefined(); // an id from before boot ids were recorded
  });

  test('same kernel boot and PID namespace, pid gone: dead', () => {
    expect(runProvablyDead(runOf({ pid: 4242 }), here, dead)).toBe(true);
  });

  test('same place, pid still there: alive', () => {
    expect(runProvablyDead(runOf({ pid: 4242 }), here, alive)).toBe(false);
  });

  test.each([
    ['another PID namespace (a container sharing the hostname)', { pidNamespace: '4026532177' }],
    ['another kernel boot (or another machine with the same hostname)', { bootId: '0b8f3a34-0000-4000-8000-000000000000' }],
    ['another host', { host: 'web-2' }],
    ['a run that could not read its boot id', { bootId: '' }],
  ])('%s: not provably dead, the lease is waited out', (_label, place) => {
    expect(runProvablyDead(runOf({ pid: 4242, ...place }), here, dead)).toBe(false);
  });

  test('an id without a place (older version): never taken over early', () => {
    expect(runProvablyDead('web-1:4242:1a2b3c4d', here, dead)).toBe(false);
  });

  test('this process itself, or a checker that cannot see its own place: never', () => {
    expect(runProvablyDead(runOf({}), here, dead)).toBe(false);
    expect(runProvablyDead(runOf({ pid: 4242 }), { ...here, pidNamespace: '' }, dead)).toBe(false);
  });
});
