/**
 * Progress for long operations, on stderr: a cli-progress bar when stderr is
 * a terminal, otherwise a plain line at most once a second (logs and pipes
 * get no control characters). Silent with --json.
 */
import cliProgress from "cli-progress";
import { formatBytes, formatRate } from "./common.ts";

/** Plain progress lines are printed at most this often. */
const PLAIN_INTERVAL_MS = 1000;

export class Progress {
  readonly #label: string;
  readonly #total: number;
  readonly #started = performance.now();
  #bar: cliProgress.SingleBar | undefined;
  #lastLine = performance.now();
  #enabled: boolean;

  /** `total` is in bytes. */
  constructor(label: string, total: number, enabled: boolean) {
    this.#label = label;
    this.#total = total;
    this.#enabled = enabled && total > 0;
    if (this.#enabled && process.stderr.isTTY) {
      this.#bar = new cliProgress.SingleBar(
        {
          stream: process.stderr,
          format: `${label} [{bar}] {percentage}% | {done} of {size} | {rate} | {file}`,
          hideCursor: true,
          clearOnComplete: true,
          barsize: 30,
          fps: 10,
        },
        cliProgress.Presets.shades_classic,
      );
      this.#bar.start(total, 0, { done: formatBytes(0), size: formatBytes(total), rate: "-", file: "" });
    }
  }

  /** Reports `done` bytes of the total; `file` is what is being worked on. */
  update(done: number, file: string): void {
    if (!this.#enabled) return;
    const elapsed = performance.now() - this.#started;
    if (this.#bar !== undefined) {
      this.#bar.update(done, {
        done: formatBytes(done),
        size: formatBytes(this.#total),
        rate: formatRate(done, elapsed),
        file: shorten(file, 40),
      });
      return;
    }
    const now = performance.now();
    if (now - this.#lastLine < PLAIN_INTERVAL_MS) return;
    this.#lastLine = now;
    const pct = ((done / this.#total) * 100).toFixed(0);
    process.stderr.write(`${this.#label}: ${pct}% (${formatBytes(done)} of ${formatBytes(this.#total)}, ${formatRate(done, elapsed)})\n`);
  }

  stop(): void {
    this.#bar?.stop();
    this.#bar = undefined;
    this.#enabled = false;
  }
}

function shorten(text: string, width: number): string {
  return text.length <= width ? text : `…${text.slice(text.length - width + 1)}`;
}
