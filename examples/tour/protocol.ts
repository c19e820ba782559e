/**
 * What the tour and its child processes agree on.
 */
import type { WaitStrategy } from "../../src/index.ts";

/**
 * Part 3's rounds: a channel opened with the default options, one waiting with
 * "yield", and process.send. Each channel round ends with the message "next".
 */
export type PingRound = "default" | WaitStrategy | "send";
export const PING_ROUNDS: readonly PingRound[] = ["default", "yield", "send"];

/** Records the part 4 producer appends per millisecond (at most). */
export const PRODUCER_BATCH = 100;
