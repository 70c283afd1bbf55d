/** Where the current time comes from; attempt and lease times use it, the expiry rules get `now` as a value. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };
