import { describe, expect, test } from '@jest/globals';
import { stripVTControlCharacters } from 'node:util';
import { Chalk } from 'chalk';
import { drawBarChart, type ChartDay } from '../../src/cli/bar-chart.js';

const counts = (expiring: number, expired: number, reminder: number, support: number) => ({
  'license.expiring': expiring,
  'license.expired': expired,
  'license.expired_reminder': reminder,
  'license.update_support_expired': support,
});
const small: ChartDay[] = [
  { date: '2025-03-03', counts: counts(8, 3, 0, 1) },
  { date: '2025-03-04', counts: counts(0, 0, 0, 0) },
  { date: '2025-03-05', counts: counts(1, 0, 2, 0) },
];
/** The bar of a row: what lies between the axis and the total. */
const bar = (line: string) => /│(\S*) /.exec(line)![1]!;
const cellsOf = (line: string, character: string) => bar(line).split(character).length - 1;

describe('the forecast chart', () => {
  test('exact output at 40 columns without colour', () => {
    // The busiest day fills 40 - 14 (label) - 2 (" │") - 1 - 2 (its total) = 21 cells: 8/12, 3/12, 1/12 of 21 are
    // 14, 5.25, 1.75 -> 14, 5, 2 by largest remainder. The 3-notice day gets round(3/12 * 21) = 5: 1.75 -> 2, 3.5 -> 3.
    expect(drawBarChart(small, { width: 40, color: false })).toEqual([
      'Mon 2025-03-03 │██████████████▓▓▓▓▓░░ 12',
      'Tue 2025-03-04 │ 0',
      'Wed 2025-03-05 │██▒▒▒ 3',
      '█ license.expiring 9',
      '▓ license.expired 3',
      '▒ license.expired_reminder 2',
      '░ license.update_support_expired 1',
      'total: 15 notices in 3 days',
      'busiest day: Mon 2025-03-03, 12 notices',
    ]);
  });

  test.each([40, 80, 200])('at %i columns the busiest day fills the width, others scale, nothing is wider', (width) => {
    const lines = drawBarChart(small, { width, color: false });
    const cells = width - 14 - 2 - 1 - 2;
    expect(bar(lines[0]!)).toHaveLength(cells);
    expect(bar(lines[2]!)).toHaveLength(Math.round((3 / 12) * cells));
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(width);
    // Every type with a notice shows, however small its share.
    expect(cellsOf(lines[0]!, '░')).toBeGreaterThanOrEqual(1);
    expect(cellsOf(lines[2]!, '█')).toBeGreaterThanOrEqual(1);
    expect(cellsOf(lines[2]!, '▓')).toBe(0);
  });

  test('the legend wraps to the width', () => {
    const lines = drawBarChart(small, { width: 80, color: false });
    expect(lines.slice(3, 5)).toEqual(['█ license.expiring 9   ▓ license.expired 3   ▒ license.expired_reminder 2', '░ license.update_support_expired 1']);
    expect(drawBarChart(small, { width: 200, color: false })[3]).toBe(
      '█ license.expiring 9   ▓ license.expired 3   ▒ license.expired_reminder 2   ░ license.update_support_expired 1',
    );
  });

  test('huge counts: grouped digits, the bar still fits, a single notice beside billions still gets its cell', () => {
    const lines = drawBarChart(
      [
        { date: '2025-01-01', counts: counts(4_000_000_000, 1, 0, 0) },
        { date: '2025-01-02', counts: counts(0, 0, 1, 0) },
      ],
      { width: 80, color: false },
    );
    const cells = 80 - 14 - 2 - 1 - '4,000,000,001'.length;
    expect(lines[0]).toBe(`Wed 2025-01-01 │${'█'.repeat(cells - 1)}▓ 4,000,000,001`);
    expect(lines[1]).toBe('Thu 2025-01-02 │▒ 1');
    expect(lines).toContain('total: 4,000,000,002 notices in 2 days');
    expect(lines).toContain('busiest day: Wed 2025-01-01, 4,000,000,001 notices');
  });

  test('a terminal too narrow still gets a 10-cell bar', () => {
    expect(bar(drawBarChart(small, { width: 20, color: false })[0]!)).toHaveLength(10);
  });

  test('no notices at all, and ties for the busiest day', () => {
    const quiet = drawBarChart([{ date: '2025-03-04', counts: counts(0, 0, 0, 0) }], { width: 60, color: false });
    expect(quiet).toContain('Tue 2025-03-04 │ 0');
    expect(quiet.slice(-2)).toEqual(['total: 0 notices in 1 day', 'busiest day: none (no notices in these days)']);
    const tie = drawBarChart(
      [
        { date: '2025-03-03', counts: counts(1, 0, 0, 0) },
        { date: '2025-03-04', counts: counts(0, 1, 0, 0) },
      ],
      { width: 60, color: false },
    );
    expect(tie.at(-1)).toBe('busiest day: Mon 2025-03-03, 1 notice (and 1 more day with as many)');
  });

  test('colour is only an addition: off means no escape codes even with a colour-capable painter; on, the text is the same under the codes', () => {
    const paint = new Chalk({ level: 1 });
    const plain = drawBarChart(small, { width: 80, color: false, paint });
    for (const line of plain) expect(line).not.toContain('\u001b');
    const coloured = drawBarChart(small, { width: 80, color: true, paint });
    // 61 cells at 80 columns: 8/12 of them is 40.67, which the largest remainder rounds up to 41.
    expect(coloured[0]).toContain(`\u001b[33m${'█'.repeat(41)}\u001b[39m\u001b[31m`);
    expect(coloured.map((line) => stripVTControlCharacters(line))).toEqual(plain);
  });

  test('a given type order is the stack and legend order; unknown types get their own characters', () => {
    const lines = drawBarChart([{ date: '2025-03-03', counts: { b: 1, a: 1, c: 1, d: 1, e: 1 } }], { width: 40, color: false, types: ['a'] });
    expect(lines[1]).toBe('█ a 1   ▓ b 1   ▒ c 1   ░ d 1   # e 1');
    expect(bar(lines[0]!)).toMatch(/^█+▓+▒+░+#+$/);
  });
});
