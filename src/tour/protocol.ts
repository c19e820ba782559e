/**
 * What the tour and its child processes agree on.
 */
import type { WaitStrategy } from "../index.ts";

/** The wait strategies part 3 compares, in order; each round ends with the message "next". */
export const PING_STRATEGIES: readonly WaitStrategy[] = ["futex", "yield"];

/** Records the part 4 producer appends per millisecond (at most). */
export const PRODUCER_BATCH = 100;
