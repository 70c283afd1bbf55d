// The terminal chart of `licenses forecast`: one stacked bar per day, a legend, the totals and the busiest day; pure, returns lines.
import { stripVTControlCharacters } from 'node:util';
import { Chalk, type ChalkInstance } from 'chalk';

export interface ChartDay {
  /** 'YYYY-MM-DD'. */
  date: string;
  /** Notices by event type. */
  counts: Readonly<Record<string, number>>;
}

export interface BarChartOptions {
  /** The terminal's columns; rows fit in it unless it is too narrow for a 10-cell bar. */
  width: number;
  /** Colour as an addition: every type keeps its own character, so the chart reads the same without it. */
  color: boolean;
  /** Paints the segments when `color` is on (the CLI passes its Output's, which knows NO_COLOR and the terminal). */
  paint?: ChalkInstance;
  /** The order of the stack and the legend; default: the order the types first appear in the days' counts. */
  types?: readonly string[];
}

/*
 * One character per type, in stack order, so a black-and-white terminal, a cron mail or a screen reader
 * copy still tells them apart: the four shades of the block for the four event types (darkest first), then
 * ASCII marks and letters should more types ever appear. Colours follow the same order.
 */
const CHARACTERS = ['█', '▓', '▒', '░', '#', '=', '+', '*', '%', '@'];
const COLOURS = ['yellow', 'red', 'magenta', 'cyan', 'blue', 'green', 'white', 'gray'] as const;
// Below this a bar says nothing; a terminal that narrow gets wrapped rows instead.
const MIN_BAR_CELLS = 10;
const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

/** 1234567 as 1,234,567: a count an operator reads at a glance. */
function grouped(count: number): string {
  return String(count).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

const notices = (count: number) => `${grouped(count)} ${count === 1 ? 'notice' : 'notices'}`;

/** `Mon 2025-03-03`: "who gets a notice next Monday?" is read off the chart. */
function dayLabel(date: string): string {
  const time = Date.parse(`${date}T00:00:00Z`);
  return Number.isNaN(time) ? date : `${WEEKDAYS[new Date(time).getUTCDay()]} ${date}`;
}

function styleFor(index: number): { character: string; colour: (typeof COLOURS)[number] } {
  const character = CHARACTERS[index] ?? String.fromCharCode(65 + ((index - CHARACTERS.length) % 26));
  return { character, colour: COLOURS[index % COLOURS.length]! };
}

/**
 * Cells per type for one day: the day's bar is its total scaled so the busiest day fills `cells`, split by
 * largest remainder so the segments add up to it; a type with any notice gets at least one cell.
 */
function segmentCells(counts: readonly number[], busiest: number, cells: number): number[] {
  const total = counts.reduce((sum, count) => sum + count, 0);
  if (total === 0) return counts.map(() => 0);
  const ideal = counts.map((count) => (count / busiest) * cells);
  const present = counts.filter((count) => count > 0).length;
  const target = Math.min(cells, Math.max(present, Math.round((total / busiest) * cells)));
  const shares = ideal.map((value, index) => (counts[index]! > 0 ? Math.max(1, Math.floor(value)) : 0));
  let used = shares.reduce((sum, share) => sum + share, 0);
  // Short: the largest fractions get the missing cells (at most one each; ties go to the earlier type).
  const byFraction = shares
    .map((_, index) => index)
    .filter((index) => counts[index]! > 0)
    .sort((a, b) => ideal[b]! - Math.floor(ideal[b]!) - (ideal[a]! - Math.floor(ideal[a]!)) || a - b);
  for (const index of byFraction) {
    if (used >= target) break;
    shares[index]! += 1;
    used += 1;
  }
  // Over (the one-cell minimum of small types): take from the segment furthest above its ideal size.
  while (used > target) {
    let take = -1;
    for (const [index, share] of shares.entries()) {
      if (share > 1 && (take < 0 || share - ideal[index]! > shares[take]! - ideal[take]!)) take = index;
    }
    if (take < 0) break;
    shares[take]! -= 1;
    used -= 1;
  }
  return shares;
}

/** Wraps `entries` into lines of at most `width` columns (an entry wider than that gets a line of its own). */
function wrap(entries: readonly string[], widths: readonly number[], width: number, gap = '   '): string[] {
  const lines: string[] = [];
  let line = '';
  let used = 0;
  entries.forEach((entry, index) => {
    const entryWidth = widths[index]!;
    if (used > 0 && used + gap.length + entryWidth > width) {
      lines.push(line);
      line = '';
      used = 0;
    }
    line += used > 0 ? gap + entry : entry;
    used += (used > 0 ? gap.length : 0) + entryWidth;
  });
  if (line !== '') lines.push(line);
  return lines;
}

/**
 * The forecast as text lines:
 *
 *   Mon 2025-03-03 │████████▓▓▓ 11
 *   Tue 2025-03-04 │ 0
 *   █ license.expiring 8   ▓ license.expired 3
 *   total: 11 notices in 2 days
 *   busiest day: Mon 2025-03-03, 11 notices
 */
export function drawBarChart(days: readonly ChartDay[], options: BarChartOptions): string[] {
  const types = [...(options.types ?? [])];
  for (const day of days) for (const type of Object.keys(day.counts)) if (!types.includes(type)) types.push(type);
  const paint = options.paint ?? new Chalk({ level: 1 });
  const styles = types.map((_, index) => styleFor(index));
  const coloured = (index: number, text: string) => (options.color && text !== '' ? paint[styles[index]!.colour](text) : text);

  const rows = days.map((day) => {
    const counts = types.map((type) => day.counts[type] ?? 0);
    return { label: dayLabel(day.date), counts, total: counts.reduce((sum, count) => sum + count, 0) };
  });
  const labelWidth = Math.max(0, ...rows.map((row) => row.label.length));
  const totalWidth = Math.max(1, ...rows.map((row) => grouped(row.total).length));
  // `<label> │<bar> <total>`: the bar takes what the label, the axis and the widest total leave.
  const cells = Math.max(MIN_BAR_CELLS, Math.floor(options.width) - labelWidth - 2 - 1 - totalWidth);
  const busiest = Math.max(0, ...rows.map((row) => row.total));

  const lines = rows.map((row) => {
    const shares = busiest === 0 ? row.counts.map(() => 0) : segmentCells(row.counts, busiest, cells);
    const bar = shares.map((share, index) => coloured(index, styles[index]!.character.repeat(share))).join('');
    return `${row.label.padEnd(labelWidth)} │${bar} ${grouped(row.total)}`;
  });

  // The legend carries each type's total, so it wraps to the width with everything else.
  const legend = types.map(
    (type, index) => `${coloured(index, styles[index]!.character)} ${type} ${grouped(rows.reduce((total, row) => total + row.counts[index]!, 0))}`,
  );
  lines.push(
    ...wrap(
      legend,
      legend.map((entry) => stripVTControlCharacters(entry).length),
      Math.max(options.width, 1),
    ),
  );

  const sum = rows.reduce((total, row) => total + row.total, 0);
  lines.push(`total: ${notices(sum)} in ${days.length} ${days.length === 1 ? 'day' : 'days'}`);
  if (busiest === 0) {
    lines.push('busiest day: none (no notices in these days)');
  } else {
    const first = rows.find((row) => row.total === busiest)!;
    const others = rows.filter((row) => row.total === busiest).length - 1;
    lines.push(`busiest day: ${first.label}, ${notices(busiest)}${others === 0 ? '' : ` (and ${others} more ${others === 1 ? 'day' : 'days'} with as many)`}`);
  }
  return lines;
}
