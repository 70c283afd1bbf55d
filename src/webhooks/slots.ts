/** Where an attempt waits for its turn: at most so many HTTP attempts in flight (src/delivery/fair-slots.ts shares them between endpoints). */
export interface SlotSource {
  /** Resolves with the function that gives the slot back. */
  acquire(): Promise<() => void>;
}
