import fs from 'node:fs';

/**
 * What `file` is when it exists and is not a regular file ("a named pipe (FIFO)"), else undefined. stat()
 * never blocks, while open() on a FIFO waits for a writer in a thread that no signal can stop.
 */
export function notRegularFile(file: string): string | undefined {
  let stats: fs.Stats;
  try {
    stats = fs.statSync(file);
  } catch {
    // Missing or unreadable: the caller's own open reports it in its words.
    return undefined;
  }
  if (stats.isFile()) return undefined;
  if (stats.isFIFO()) return 'a named pipe (FIFO)';
  if (stats.isDirectory()) return 'a directory';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  if (stats.isSocket()) return 'a socket';
  return 'not a regular file';
}
