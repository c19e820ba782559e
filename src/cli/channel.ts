/**
 * `memmap channel stat <path>`: capacity, fill level, positions, who waits.
 * Reads the channel's header without joining it (inspectChannel).
 */
import { inspectChannel, type ChannelStats } from "../index.ts";
import { CliError, EXIT_OK, formatBytes, formatCount, formatPercent, printJson, table } from "./common.ts";
import { fileProblem } from "./files.ts";

function describe(file: string, s: ChannelStats): string {
  const consumer = s.consumerAttached
    ? `pid ${s.consumerPid ?? "?"}, attached${s.consumerWaiting ? ", waiting for messages" : ""}`
    : s.consumerPid !== undefined
      ? `none attached (last: pid ${s.consumerPid})`
      : "none attached";
  const producers =
    s.producerPids.length > 0
      ? `${s.producers}; live: pid ${s.producerPids.join(", ")}${s.producersWaiting > 0 ? `; ${s.producersWaiting} waiting for space` : ""}`
      : `${s.producers}; none registered and alive`;
  const rows = [
    ["capacity", `${formatBytes(s.capacity)} (largest message ${formatCount(s.maxMessageLength)} bytes${s.checksum ? "; a CRC32C on each" : ""})`],
    ["fill", `${formatCount(s.used)} bytes used (${formatPercent(s.used, s.capacity)}), ${formatCount(s.free)} free`],
    ["messages", `${formatCount(s.messages)} waiting to be received`],
    ["positions", `producer ${formatCount(s.producerPosition)}, consumer ${formatCount(s.consumerPosition)}`],
    ["producers", producers],
    ["consumer", consumer],
    ["ended", s.ended ? "yes: no more messages will come" : "no"],
    ["created", new Date(s.createdAt).toISOString()],
  ];
  return `Channel ${file} (format version ${s.version})\n${table(rows.map(([k, v]) => [`  ${k}`, v!]), new Set([0, 1]))}\n`;
}

export async function runChannelStat(file: string, options: { json?: boolean }): Promise<number> {
  let stats: ChannelStats;
  try {
    stats = inspectChannel(file);
  } catch (error) {
    throw new CliError(fileProblem(file, error).message, 1, { cause: error });
  }
  if (options.json) printJson({ file, ...stats });
  else process.stdout.write(describe(file, stats));
  return EXIT_OK;
}
