/**
 * stress:log — the crash test at scale: 5,000 SIGKILLs of a writer process
 * at random moments (while it opens and repairs the log, mid-append, between
 * a claim and its commit, mid-roll-over), each followed by a reopen and a
 * full check of the log (test/fixtures/log-crash-loop.ts). Not part of
 * `npm test`: it takes a while (about 0.1–0.3 s per kill and lane).
 *
 * Run: npm run stress:log [-- --kills N] [-- --lanes N]
 * One lane by default (it cycles durability none, batch, sync); more lanes
 * run at once, each with one durability, and only pay off with idle cores.
 *
 * Concurrency mode: npm run stress:log -- --concurrency [--opens N] [--writers N]
 * `writers` processes (default 6) append tagged records to one log with
 * 64 KiB segments and retention (4 segments), a named reader in another
 * process tails it (committing as it goes, so retention drops what it has
 * read), and two more processes open the log `opens` times in all (default
 * 1,000: writable, read-only, readPrefix, verify "full", inspectLog) while
 * segments roll over and are deleted. It counts false damage reports (the
 * log is healthy: required 0) and acknowledged records lost (every record
 * whose append returned must reach the tailing reader, intact and in each
 * writer's order: required 0).
 */
import { openLog } from "../src/log/log.ts";
import { killLoop, type LaneStats } from "../test/fixtures/log-crash-loop.ts";
import { makeTmpDir, removeBundles, removeTmpDir, spawnFixture, taggedRecord, type Child } from "../test/fixtures/log-helpers.ts";
import { saveResults } from "./common.ts";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

if (process.argv.includes("--concurrency")) {
  try {
    await concurrency(arg("opens", 1000), arg("writers", 6));
  } finally {
    removeBundles();
  }
  process.exit(0);
}

async function concurrency(opens: number, writers: number): Promise<void> {
  const SEGMENT = 64 * 1024;
  const dir = makeTmpDir();
  const children: Child[] = [];
  const t0 = performance.now();
  try {
    openLog(dir, { create: true, segmentSize: SEGMENT }).close();
    const tailer = spawnFixture("log-tailer.ts", [dir, "stress-tail", "200"]);
    children.push(tailer);
    await tailer.waitFor((l) => l === "ready", 60_000);
    const rollers = Array.from({ length: writers }, (_, k) => spawnFixture("log-roller.ts", [dir, String(k + 1), String(SEGMENT), "4", "50", "2"]));
    children.push(...rollers);
    await rollers[0]!.waitFor((l) => l === "ready", 120_000); // segments are being dropped
    console.log(`${writers} writers appending, segments rolling over and dropped; ${opens} opens in 2 other processes…`);
    const openers = [0, 1].map((k) => spawnFixture("log-opener.ts", [dir, String(Math.ceil(opens / 2) - (k === 1 && opens % 2 === 1 ? 1 : 0))]));
    children.push(...openers);
    const opened: { opens: number; falseDamage: number; otherErrors: number; outOfRange: number; examples: string[] }[] = [];
    for (const o of openers) {
      const { code } = await o.exited;
      if (code !== 0) throw new Error(`an opener failed (${code}): ${o.stderr()}`);
      opened.push(JSON.parse(o.lines[o.lines.length - 1]!));
    }
    const appended: number[] = [];
    for (const r of rollers) {
      r.proc.stdin!.end("stop\n");
      const done = await r.waitFor((l) => l.startsWith("done "), 120_000);
      appended.push(Number(done.split(" ")[1]));
      const { code } = await r.exited;
      if (code !== 0) throw new Error(`a writer failed (${code}): ${r.stderr()}`);
    }
    const log = openLog(dir);
    log.append(taggedRecord(0xffffffff, 0)); // the tailer's end marker
    const first = log.firstSeq;
    const next = log.nextSeq;
    log.close();
    const { code } = await tailer.exited;
    if (code !== 0) throw new Error(`the tailing reader failed (${code}): ${tailer.stderr()}`);
    const tail = JSON.parse(tailer.lines[tailer.lines.length - 1]!) as { count: number; gaps: number; perWriter: Record<string, number> };
    const lost = appended.reduce((sum, n, k) => sum + Math.max(0, n - (tail.perWriter[k + 1] ?? 0)), 0);
    const summary = {
      writers,
      opens: opened.reduce((a, o) => a + o.opens, 0),
      falseDamageReports: opened.reduce((a, o) => a + o.falseDamage, 0),
      otherOpenErrors: opened.reduce((a, o) => a + o.otherErrors, 0),
      readersSentOutOfRange: opened.reduce((a, o) => a + o.outOfRange, 0),
      examples: opened.flatMap((o) => o.examples),
      acknowledged: appended.reduce((a, n) => a + n, 0),
      delivered: tail.count,
      acknowledgedLost: lost,
      gaps: tail.gaps,
      firstSeqKept: first,
      nextSeq: next,
      seconds: (performance.now() - t0) / 1000,
    };
    console.log(JSON.stringify(summary, null, 2));
    console.log(`raw numbers: ${saveResults("log-stress-concurrency", summary)}`);
    if (summary.falseDamageReports > 0 || summary.otherOpenErrors > 0 || lost > 0) process.exitCode = 1;
  } finally {
    for (const c of children) c.proc.kill("SIGKILL");
    await Promise.all(children.map((c) => c.exited));
    removeTmpDir(dir);
  }
}

const kills = arg("kills", 5000);
const lanes = arg("lanes", 1);
const modes = ["none", "batch", "sync"];
const t0 = performance.now();
const progress = new Array<LaneStats | undefined>(lanes);
let lastPrint = 0;
const print = (force = false): void => {
  const now = performance.now();
  if (!force && now - lastPrint < 5000) return;
  lastPrint = now;
  const done = progress.reduce((a, s) => a + (s?.kills ?? 0), 0);
  const rewound = progress.reduce((a, s) => a + (s?.rewound ?? 0), 0);
  console.log(`${done}/${kills} kills, ${rewound} mid-append, ${((now - t0) / 1000).toFixed(0)} s`);
};

try {
  const per = Math.ceil(kills / lanes);
  const results = await Promise.all(
    Array.from({ length: lanes }, (_, lane) =>
      killLoop(per, lanes === 1 ? modes : [modes[lane % modes.length]!], (s) => {
        progress[lane] = s;
        print();
      }),
    ),
  );
  print(true);
  const total = results.reduce((a, r) => a + r.kills, 0);
  const summary = {
    kills: total,
    lanes: results.map((r, i) => ({ durability: lanes === 1 ? modes.join(", ") : modes[i % modes.length], ...r })),
    seconds: (performance.now() - t0) / 1000,
    result: "every check passed",
  };
  console.log(`\n${total} kills, every reopen held exactly the committed prefix with every reported record.`);
  console.log(`kills while opening/repairing: ${results.reduce((a, r) => a + r.early, 0)}; between claim and commit: ${results.reduce((a, r) => a + r.rewound, 0)}`);
  console.log(`raw numbers: ${saveResults("log-stress", summary)}`);
} finally {
  removeBundles();
}
