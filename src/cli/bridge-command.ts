/**
 * The `memmap bridge push|pull` commands (registered by program.ts). The
 * bridge itself, and the NATS client, load only when a bridge command runs.
 */
import type { Command } from "commander";
import { parsePositiveInteger } from "./common.ts";
import type { BridgePullCliOptions, BridgePushCliOptions } from "./bridge.ts";

export function registerBridge(program: Command, setCode: (code: number) => void): void {
  const bridge = program.command("bridge").description("mirror a log into NATS JetStream (push) or a stream into a log (pull), exactly once");
  bridge
    .command("push")
    .description("publish the log's records to a JetStream stream until SIGINT/SIGTERM")
    .argument("<logdir>", "the log directory (must exist)")
    .requiredOption("--server <url>", "NATS server URL, e.g. nats://127.0.0.1:4222")
    .requiredOption("--stream <name>", "the stream (created with [subject] if missing)")
    .requiredOption("--subject <subject>", "the subject to publish to (one log per subject)")
    .option("--cursor <name>", "the log's durable reader that tracks what the stream acknowledged", "jetstream")
    .option("--max-in-flight <n>", "most publishes waiting for their ack", parsePositiveInteger)
    .option("--connect-timeout <ms>", "how long to retry the first connection", parsePositiveInteger)
    .option("--json", "print the final stats as JSON")
    .action(async (dir: string, opts: BridgePushCliOptions) => {
      const { runBridgePush } = await import("./bridge.ts");
      setCode(await runBridgePush(dir, opts));
    });
  bridge
    .command("pull")
    .description("append a JetStream stream's messages to the log (created if missing) until SIGINT/SIGTERM")
    .argument("<logdir>", "the log directory")
    .requiredOption("--server <url>", "NATS server URL, e.g. nats://127.0.0.1:4222")
    .requiredOption("--stream <name>", "the stream to read (must exist)")
    .requiredOption("--consumer <name>", "the durable consumer (the bridge owns it)")
    .option("--subject <filter>", "only messages on this subject")
    .option("--connect-timeout <ms>", "how long to retry the first connection", parsePositiveInteger)
    .option("--json", "print the final stats as JSON")
    .action(async (dir: string, opts: BridgePullCliOptions) => {
      const { runBridgePull } = await import("./bridge.ts");
      setCode(await runBridgePull(dir, opts));
    });
}
