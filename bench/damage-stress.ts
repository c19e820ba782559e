/**
 * Damage fuzz: fresh copies of a log (with and without CRCs), a channel and
 * a record file get random damage (bit flips, zeroed ranges, truncation,
 * appended garbage, renamed / swapped / deleted segments, damaged log.meta
 * and cursors), then are opened and read in a worker process with a timeout,
 * in every open mode. Every trial is classified:
 *
 * - ok: everything returned is what was written (damage, if any, reported);
 * - coded error: an MmapError with a string code;
 * - crash: the worker died by a signal; hang: it did not answer in time;
 * - uncoded error: anything thrown that is not an MmapError with a string code;
 * - phantom: a record returned that was never written (payloads carry their
 *   index and a checksum, and the fixture knows where each one lies);
 * - unchecked damage: a record returned at its own place with damaged bytes,
 *   from a format with no checksum there (channel frames, record rows, a log
 *   without CRCs): not detectable by design, counted apart;
 * - silent loss: a record intact in the files but not returned, no damage reported;
 * - changed-then-threw: the open threw, and the files differ from before it
 *   (an open that returned may write: a writer slot, a repair; a read that
 *   throws later is a coded error).
 *
 *   npm run stress:damage -- [--trials 5000] [--seed 1] [--timeout 10000] [--workers 2]
 *
 * The test suite runs a few hundred trials through runTrials() (test/damage-fuzz.test.ts).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const SELF = fileURLToPath(import.meta.url);
/** The library under test (MEMMAP_DAMAGE_SRC: another tree's src/index.ts, to compare versions). */
const SRC = process.env.MEMMAP_DAMAGE_SRC ?? path.resolve(path.dirname(SELF), "../src/index.ts");

// ------------------------------------------------------------------ payloads

const MAGIC = 0x474d4444; // "DDMG"
const LOG_RECORDS = 240;
const CHANNEL_MESSAGES = 60;
const RECORD_ROWS = 100;

function fnv(bytes: Uint8Array, from: number, to: number, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = from; i < to; i++) h = Math.imul(h ^ bytes[i]!, 16777619) >>> 0;
  return h;
}

/**
 * A self-describing payload: 8 decoy bytes, magic, index, length, filler, and
 * a checksum of all before it. The decoy of every odd record looks like a
 * frame header (length 16, type DATA): a reader that takes payload bytes for
 * a frame delivers them as a message, and the checker sees where.
 */
function payload(index: number, length: number): Uint8Array {
  const n = Math.max(32, length);
  const b = new Uint8Array(n);
  const v = new DataView(b.buffer);
  if (index % 2 === 1) {
    v.setInt32(0, 16, true);
    v.setUint16(4, 1, true);
  }
  v.setUint32(8, MAGIC, true);
  v.setUint32(12, index, true);
  v.setUint32(16, n, true);
  for (let i = 20; i < n - 4; i++) b[i] = (index * 31 + i * 7) & 0xff;
  v.setUint32(n - 4, fnv(b, 0, n - 4), true);
  return b;
}

/** The payload's index when it is whole, else -1. */
function payloadIndex(b: Uint8Array): number {
  if (b.length < 32) return -1;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (v.getUint32(8, true) !== MAGIC || v.getUint32(16, true) !== b.length) return -1;
  if (v.getUint32(b.length - 4, true) !== fnv(b, 0, b.length - 4)) return -1;
  return v.getUint32(12, true);
}

function sizeOf(index: number): number {
  return 16 + ((index * 2654435761) >>> 0) % 1500;
}

// ------------------------------------------------------------------ worker side

/** Channels with `-crc` carry a CRC32C of every message (createChannel's `checksum: true`). */
type Kind = "log-crc" | "log-nocrc" | "channel-multi" | "channel-single" | "channel-multi-crc" | "channel-single-crc" | "record";
const MODES: Record<Kind, string[]> = {
  "log-crc": ["default", "verify-full", "readPrefix", "truncate", "readOnly", "inspect"],
  "log-nocrc": ["default", "verify-full", "readPrefix", "truncate", "readOnly", "inspect"],
  "channel-multi": ["receive", "inspect"],
  "channel-single": ["receive", "inspect"],
  "channel-multi-crc": ["receive", "inspect"],
  "channel-single-crc": ["receive", "inspect"],
  record: ["read", "write"],
};

/** What a worker reports for one trial. */
interface Outcome {
  threw?: { coded: boolean; code?: string; message: string };
  /** The open returned: a later throw came from reading, after an open that may legitimately write (a writer slot, a repair). */
  opened?: boolean;
  damageReported: boolean;
  /** Records returned: position (seq, ring offset or row), payload index or -1, length. */
  records: { at: number; index: number; length: number }[];
}

async function runOne(kind: Kind, mode: string, target: string): Promise<Outcome> {
  const m = await import(SRC);
  const out: Outcome = { damageReported: false, records: [] };
  try {
    if (kind === "log-crc" || kind === "log-nocrc") {
      if (mode === "inspect") {
        const info = m.inspectLog(target);
        out.damageReported = info.damage !== undefined;
        return out;
      }
      const options: Record<string, unknown> = {};
      if (mode === "verify-full") options.verify = "full";
      if (mode === "readPrefix") options.onDamage = "readPrefix";
      if (mode === "truncate") options.onDamage = "truncate";
      if (mode === "readOnly") options.readOnly = true;
      const log = m.openLog(target, options);
      out.opened = true;
      try {
        out.damageReported = log.damage !== undefined || log.recovery.damage !== undefined || log.recovery.truncated !== undefined;
        const reader = log.reader({ from: "start" });
        for (let r = reader.next(); r; r = reader.next()) out.records.push({ at: r.seq, index: payloadIndex(r.data), length: r.data.length });
        reader.close();
        // The durable cursor, too (validated on open; a read-only log has no durable readers).
        if (mode !== "readOnly") {
          const named = log.reader({ name: "c1" });
          for (let r = named.next(); r; r = named.next()) if (payloadIndex(r.data) < 0) out.records.push({ at: r.seq, index: -1, length: r.data.length });
          named.close();
        }
        out.damageReported ||= log.damage !== undefined;
      } finally {
        log.close();
      }
      return out;
    }
    if (kind.startsWith("channel")) {
      if (mode === "inspect") {
        m.inspectChannel(target);
        return out;
      }
      const ch = m.openChannel(target);
      out.opened = true;
      try {
        for (let rounds = 0; rounds < 10_000; rounds++) {
          let msg = ch.tryReceive();
          if (!msg) {
            try {
              msg = ch.receive({ timeoutMs: 100 });
            } catch (error) {
              const code = (error as { code?: unknown }).code;
              if (code === "ERR_TIMEOUT" || code === "ERR_PEER_GONE" || code === "ERR_CLOSED") break;
              throw error;
            }
          }
          out.records.push({ at: msg.byteOffset - 4096, index: payloadIndex(msg), length: msg.length });
        }
        out.damageReported = ch.abortedFrames > 0;
      } finally {
        ch.close();
      }
      return out;
    }
    const file = m.openRecordFile(target, { access: mode === "write" ? "write" : "read" });
    out.opened = true;
    try {
      const rows = file.rows;
      for (let i = 0; i < rows.length; i++) {
        const row = rows.read(i) as { i: number; a: number; check: number };
        out.records.push({ at: i, index: row.check === rowCheck(row.i, row.a) && row.i === i ? row.i : -1, length: 0 });
      }
    } finally {
      file.close();
    }
    return out;
  } catch (error) {
    const coded = error instanceof m.MmapError && typeof (error as { code: unknown }).code === "string";
    out.threw = { coded, code: coded ? (error as { code: string }).code : undefined, message: String((error as Error)?.message ?? error).slice(0, 300) };
    return out;
  }
}

function rowCheck(i: number, a: number): number {
  return (Math.imul(i, 2654435761) ^ Math.floor(a * 1000)) >>> 0;
}

async function workerMain(): Promise<void> {
  let buffer = "";
  process.stdin.setEncoding("utf8");
  for await (const chunk of process.stdin) {
    buffer += chunk;
    for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      const { id, kind, mode, target } = JSON.parse(line) as { id: number; kind: Kind; mode: string; target: string };
      const outcome = await runOne(kind, mode, target);
      process.stdout.write(`${JSON.stringify({ id, outcome })}\n`);
    }
  }
}

// ------------------------------------------------------------------ fixtures

interface Located {
  /** File name relative to the fixture directory. */
  file: string;
  /** Byte range of the record (frame header included) in that file. */
  from: number;
  to: number;
  /** Its position (seq, ring offset or row). */
  at: number;
  length: number;
}

interface Fixture {
  kind: Kind;
  dir: string;
  /** Path opened, relative to the trial directory. */
  target: string;
  records: Located[];
  checksummed: boolean;
}

function locate(dir: string, names: string[], index: number, bytes: Uint8Array, at: number, header: number): Located {
  for (const name of names) {
    const data = fs.readFileSync(path.join(dir, name));
    const off = Buffer.from(data.buffer, data.byteOffset, data.length).indexOf(Buffer.from(bytes));
    if (off >= 0) return { file: name, from: off - header, to: off + bytes.length, at, length: bytes.length };
  }
  throw new Error(`fixture: record ${index} not found in ${dir}`);
}

async function buildFixtures(root: string): Promise<Fixture[]> {
  const m = await import(SRC);
  const fixtures: Fixture[] = [];
  for (const crc of [true, false]) {
    const dir = path.join(root, crc ? "log-crc" : "log-nocrc");
    const log = m.openLog(path.join(dir, "log"), { create: true, segmentSize: 65536, crc });
    const seqs: number[] = [];
    for (let i = 0; i < LOG_RECORDS; i++) seqs.push(log.append(payload(i, sizeOf(i))));
    const reader = log.reader({ name: "c1" });
    for (let i = 0; i < 50; i++) reader.next();
    reader.commit();
    reader.close();
    log.close();
    const names = fs.readdirSync(path.join(dir, "log")).filter((n) => n.endsWith(".seg")).map((n) => path.join("log", n));
    const records = seqs.map((seq, i) => locate(dir, names, i, payload(i, sizeOf(i)), seq, 32));
    fixtures.push({ kind: crc ? "log-crc" : "log-nocrc", dir, target: "log", records, checksummed: crc });
  }
  for (const [multi, checksum] of [[true, false], [false, false], [true, true], [false, true]] as const) {
    const kind = `channel-${multi ? "multi" : "single"}${checksum ? "-crc" : ""}` as Kind;
    const dir = path.join(root, kind);
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, "ch");
    m.createChannel(file, { capacity: 1 << 16, producers: multi ? "multi" : "single", checksum }).close();
    const p = m.openChannel(file);
    const sizes = Array.from({ length: CHANNEL_MESSAGES }, (_, i) => 16 + ((i * 7919) % 700));
    for (let i = 0; i < CHANNEL_MESSAGES; i++) p.send(payload(i, sizes[i]!));
    p.close();
    const header = checksum ? 12 : 8; // the frame header, and the CRC32C after it
    const records = sizes.map((n, i) => {
      const r = locate(dir, ["ch"], i, payload(i, n), 0, header);
      return { ...r, at: r.from + header - 4096 };
    });
    fixtures.push({ kind, dir, target: "ch", records, checksummed: checksum });
  }
  {
    const dir = path.join(root, "record");
    fs.mkdirSync(dir, { recursive: true });
    const Row = m.struct({ i: "u32", a: "f64", check: "u32" });
    const w = m.createRecordFile(path.join(dir, "r.rec"), Row, { capacity: 256 });
    for (let i = 0; i < RECORD_ROWS; i++) w.append({ i, a: i * 1.5, check: rowCheck(i, i * 1.5) });
    const headerLength = w.headerLength;
    w.close();
    const records = Array.from({ length: RECORD_ROWS }, (_, i) => ({ file: "r.rec", from: headerLength + i * 24, to: headerLength + (i + 1) * 24, at: i, length: 0 }));
    fixtures.push({ kind: "record", dir, target: "r.rec", records, checksummed: false });
  }
  return fixtures;
}

// ------------------------------------------------------------------ damage

function prng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

function listFiles(dir: string, base = ""): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(dir, base), { withFileTypes: true })) {
    const rel = path.join(base, e.name);
    if (e.isDirectory()) out.push(...listFiles(dir, rel));
    else out.push(rel);
  }
  return out.sort();
}

function hashTree(dir: string): string {
  const h = createHash("sha1");
  for (const f of listFiles(dir)) {
    h.update(f);
    h.update(fs.readFileSync(path.join(dir, f)));
  }
  return h.digest("hex");
}

const DAMAGES = ["bitflip", "zero", "truncate", "append", "rename", "swap", "delete", "meta", "cursor", "length-word"] as const;
type Damage = (typeof DAMAGES)[number];

/** Applies one damage to the copy in `dir`; returns a description. */
function applyDamage(fx: Fixture, dir: string, damage: Damage, rnd: () => number): string {
  const files = listFiles(dir);
  const segs = files.filter((f) => f.endsWith(".seg"));
  const pick = <T>(a: T[]): T => a[rnd() % a.length]!;
  const isLog = fx.kind.startsWith("log");
  let file: string;
  if (damage === "meta" || damage === "cursor") file = isLog ? path.join("log", "log.meta") : fx.target;
  else if (isLog) file = segs.length > 0 && rnd() % 4 !== 0 ? pick(segs) : pick(files);
  else file = fx.target;
  const full = path.join(dir, file);
  if (!fs.existsSync(full)) return `${damage}: nothing at ${file}`;
  const size = fs.statSync(full).size;
  const write = (at: number, bytes: Uint8Array): void => {
    const fd = fs.openSync(full, "r+");
    fs.writeSync(fd, bytes, 0, bytes.length, at);
    fs.closeSync(fd);
  };
  const read = (at: number, n: number): Buffer => {
    const b = Buffer.alloc(n);
    const fd = fs.openSync(full, "r");
    fs.readSync(fd, b, 0, n, at);
    fs.closeSync(fd);
    return b;
  };
  // Where the data is: most damage lands among the records, where it is hardest to tell.
  const dataFrom = fx.kind.startsWith("channel") ? 4096 : 0;
  const used = fx.records.filter((r) => r.file === file);
  const hot = (): number => (used.length > 0 && rnd() % 3 !== 0 ? pick(used).from + (rnd() % 64) : dataFrom + (rnd() % Math.max(1, size - dataFrom)));
  switch (damage) {
    case "bitflip": {
      const flips = 1 + (rnd() % 8);
      for (let i = 0; i < flips; i++) {
        const at = Math.min(size - 1, hot());
        const b = read(at, 1);
        b[0]! ^= 1 << (rnd() % 8);
        write(at, b);
      }
      return `bitflip ×${flips} ${file}`;
    }
    case "zero":
    case "length-word": {
      const at = damage === "length-word" && used.length > 0 ? pick(used).from : Math.min(size - 1, hot()) & ~3;
      const n = damage === "length-word" ? 4 : 1 + (rnd() % 4096);
      write(at, new Uint8Array(Math.min(n, size - at)));
      return `${damage} ${file}@${at}+${n}`;
    }
    case "truncate": {
      const to = rnd() % 2 ? Math.min(size, hot()) : rnd() % (size + 1);
      fs.truncateSync(full, to);
      return `truncate ${file} to ${to}`;
    }
    case "append": {
      const n = 1 + (rnd() % 5000);
      const junk = new Uint8Array(n);
      for (let i = 0; i < n; i++) junk[i] = rnd() & 0xff;
      fs.appendFileSync(full, junk);
      return `append ${n} ${file}`;
    }
    case "rename": {
      if (!isLog || segs.length === 0) return damage === "rename" ? applyDamage(fx, dir, "bitflip", rnd) : "";
      const from = pick(segs);
      const base = Number(path.basename(from, ".seg"));
      const to = path.join("log", `${String(Number.isFinite(base) ? base + 1 + (rnd() % 3) : 7).padStart(path.basename(from, ".seg").length, "0")}.seg`);
      fs.renameSync(path.join(dir, from), path.join(dir, to));
      return `rename ${from} -> ${to}`;
    }
    case "swap": {
      if (!isLog || segs.length < 2) return applyDamage(fx, dir, "zero", rnd);
      const a = pick(segs);
      const b = pick(segs.filter((s) => s !== a));
      fs.renameSync(path.join(dir, a), path.join(dir, "tmp-swap"));
      fs.renameSync(path.join(dir, b), path.join(dir, a));
      fs.renameSync(path.join(dir, "tmp-swap"), path.join(dir, b));
      return `swap ${a} ${b}`;
    }
    case "delete": {
      const victim = isLog ? (segs.length > 0 && rnd() % 5 !== 0 ? pick(segs) : pick(files)) : file;
      fs.rmSync(path.join(dir, victim));
      return `delete ${victim}`;
    }
    case "meta":
    case "cursor": {
      if (!isLog && rnd() % 2 === 0) {
        // The header fields readers trust most: a record file's row count, a channel's positions.
        const at = fx.kind === "record" ? 32 + (rnd() % 8) : 128 + (rnd() % 2) * 128 + (rnd() % 16);
        const b = read(at, 1);
        b[0]! ^= 1 << (rnd() % 8);
        write(at, b);
        return `${damage} header word ${file}@${at}`;
      }
      // log.meta: the header (meta) or the cursor table (cursor, from 4096 on); other kinds: the header.
      const region = damage === "cursor" && isLog ? 4096 + (rnd() % Math.max(1, size - 4096)) : rnd() % Math.min(size, 4096);
      const at = Math.min(size - 1, region);
      if (rnd() % 2) {
        const b = read(at, 1);
        b[0]! ^= 1 << (rnd() % 8);
        write(at, b);
      } else write(at, new Uint8Array(Math.min(8, size - at)).fill(rnd() % 2 ? 0 : 0xff));
      return `${damage} ${file}@${at}`;
    }
  }
}

// ------------------------------------------------------------------ classification

export const CLASSES = ["ok", "coded error", "crash", "hang", "uncoded error", "phantom", "unchecked damage", "silent loss", "changed-then-threw"] as const;
export type TrialClass = (typeof CLASSES)[number];

export interface Trial {
  n: number;
  kind: Kind;
  mode: string;
  damage: string;
  cls: TrialClass;
  detail: string;
}

function intactRecords(fx: Fixture, dir: string): Located[] {
  const cache = new Map<string, Buffer | null>();
  const original = new Map<string, Buffer>();
  return fx.records.filter((r) => {
    if (!cache.has(r.file)) {
      const p = path.join(dir, r.file);
      cache.set(r.file, fs.existsSync(p) ? fs.readFileSync(p) : null);
      original.set(r.file, fs.readFileSync(path.join(fx.dir, r.file)));
    }
    const now = cache.get(r.file);
    if (!now || now.length < r.to) return false;
    return now.subarray(r.from, r.to).equals(original.get(r.file)!.subarray(r.from, r.to));
  });
}

function classify(fx: Fixture, outcome: Outcome, intact: Located[], changed: boolean, mode: string): { cls: TrialClass; detail: string } {
  if (outcome.threw && !outcome.threw.coded) return { cls: "uncoded error", detail: outcome.threw.message };
  const byAt = new Map(fx.records.map((r, i) => [r.at, { r, i }]));
  let unchecked = 0;
  for (const rec of outcome.records) {
    const known = byAt.get(rec.at);
    if (rec.index >= 0) {
      // Whole and self-consistent: it must be the record written there.
      if (!known || known.i !== rec.index) return { cls: "phantom", detail: `record ${rec.index} returned at ${rec.at}` };
      continue;
    }
    // Damaged bytes (or length) of a record that was written there: undetectable in a format with no
    // checksum. Anything returned where no record starts is a phantom.
    if (!fx.checksummed && known) {
      unchecked++;
      continue;
    }
    return { cls: "phantom", detail: `damaged or invented record at ${rec.at} (${rec.length} bytes)` };
  }
  // A consumer consumes: the channel's head moves (and a multi-producer ring is zeroed behind it) before any damage is met.
  const mayChange = fx.kind.startsWith("channel") && mode === "receive";
  if (outcome.threw)
    return changed && !mayChange && !outcome.opened
      ? { cls: "changed-then-threw", detail: outcome.threw.message }
      : { cls: "coded error", detail: `${outcome.threw.code}: ${outcome.threw.message}` };
  // Inspection returns no records; everything else must return every intact record unless it reported damage.
  if (mode !== "inspect" && !outcome.damageReported) {
    const returned = new Set(outcome.records.map((r) => r.at));
    const lost = intact.filter((r) => !returned.has(r.at));
    if (lost.length > 0) return { cls: "silent loss", detail: `${lost.length} intact records not returned (first at ${lost[0]!.at})` };
  }
  if (unchecked > 0) return { cls: "unchecked damage", detail: `${unchecked} records with damaged bytes (no checksum in this format)` };
  return { cls: "ok", detail: "" };
}

// ------------------------------------------------------------------ the pool

class Worker {
  #child: ChildProcess;
  #buffer = "";
  #waiting: ((line: string | { exit: string }) => void) | undefined;
  alive = true;

  constructor() {
    this.#child = spawn(process.execPath, ["--import", "tsx", SELF, "--worker"], { stdio: ["pipe", "pipe", "ignore"] });
    this.#child.stdout!.setEncoding("utf8").on("data", (d: string) => {
      this.#buffer += d;
      const nl = this.#buffer.indexOf("\n");
      if (nl >= 0 && this.#waiting) {
        const line = this.#buffer.slice(0, nl);
        this.#buffer = this.#buffer.slice(nl + 1);
        const w = this.#waiting;
        this.#waiting = undefined;
        w(line);
      }
    });
    this.#child.on("exit", (code, signal) => {
      this.alive = false;
      const w = this.#waiting;
      this.#waiting = undefined;
      w?.({ exit: signal ?? `code ${code}` });
    });
  }

  run(request: object, timeoutMs: number): Promise<Outcome | { crash: string } | { hang: true }> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#waiting = undefined;
        this.kill();
        resolve({ hang: true });
      }, timeoutMs);
      this.#waiting = (line) => {
        clearTimeout(timer);
        if (typeof line === "string") resolve((JSON.parse(line) as { outcome: Outcome }).outcome);
        else resolve({ crash: line.exit });
      };
      this.#child.stdin!.write(`${JSON.stringify(request)}\n`);
    });
  }

  kill(): void {
    this.alive = false;
    this.#child.kill("SIGKILL");
  }
}

export interface RunOptions {
  trials: number;
  seed: number;
  timeoutMs?: number;
  workers?: number;
  onTrial?: (t: Trial) => void;
}

export async function runTrials(options: RunOptions): Promise<{ trials: Trial[]; table: Map<string, Map<TrialClass, number>> }> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "memmap-damage-"));
  const timeoutMs = options.timeoutMs ?? 15_000;
  const trials: Trial[] = [];
  const table = new Map<string, Map<TrialClass, number>>();
  const pool: Worker[] = Array.from({ length: options.workers ?? 2 }, () => new Worker());
  try {
    const built = await buildFixtures(path.join(root, "fixtures"));
    const isTwin = (f: Fixture): boolean => f.kind.startsWith("channel") && f.kind.endsWith("-crc");
    const fixtures = built.filter((f) => !isTwin(f));
    const twins = new Map(built.filter(isTwin).map((f) => [f.kind.slice(0, -4), f]));
    const rnd = prng(options.seed);
    let next = 0;
    const one = async (slot: number): Promise<void> => {
      for (;;) {
        const n = next++;
        if (n >= options.trials) return;
        let fx = fixtures[rnd() % fixtures.length]!;
        // A channel is fuzzed with and without its CRC32C option, half and half (the log's share stays as it was).
        if (fx.kind === "channel-multi" || fx.kind === "channel-single") fx = rnd() % 2 === 0 ? fx : twins.get(fx.kind)!;
        const mode = MODES[fx.kind][rnd() % MODES[fx.kind].length]!;
        const dir = path.join(root, `t${n}`);
        fs.cpSync(fx.dir, dir, { recursive: true });
        const damage = applyDamage(fx, dir, DAMAGES[rnd() % DAMAGES.length]!, rnd);
        const intact = intactRecords(fx, dir);
        const before = hashTree(dir);
        if (!pool[slot]!.alive) pool[slot] = new Worker();
        const result = await pool[slot]!.run({ id: n, kind: fx.kind, mode, target: path.join(dir, fx.target) }, timeoutMs);
        let cls: TrialClass;
        let detail = "";
        if ("hang" in result) cls = "hang";
        else if ("crash" in result) [cls, detail] = ["crash", result.crash];
        else ({ cls, detail } = classify(fx, result, intact, hashTree(dir) !== before, mode));
        const trial: Trial = { n, kind: fx.kind, mode, damage, cls, detail };
        trials.push(trial);
        const key = `${fx.kind} ${mode}`;
        if (!table.has(key)) table.set(key, new Map());
        table.get(key)!.set(cls, (table.get(key)!.get(cls) ?? 0) + 1);
        options.onTrial?.(trial);
        fs.rmSync(dir, { recursive: true, force: true });
      }
    };
    await Promise.all(pool.map((_, slot) => one(slot)));
  } finally {
    for (const w of pool) w.kill();
    fs.rmSync(root, { recursive: true, force: true });
  }
  return { trials, table };
}

export function formatTable(table: Map<string, Map<TrialClass, number>>): string {
  const heads = ["target / mode", ...CLASSES];
  const rows = [...table.keys()].sort().map((k) => [k, ...CLASSES.map((c) => String(table.get(k)!.get(c) ?? 0))]);
  const total = ["total", ...CLASSES.map((c) => String([...table.values()].reduce((s, m) => s + (m.get(c) ?? 0), 0)))];
  const all = [heads, ...rows, total];
  const widths = heads.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  return all.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ")).join("\n");
}

async function main(): Promise<void> {
  const arg = (name: string, fallback: number): number => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? Number(process.argv[i + 1]) : fallback;
  };
  const trials = arg("trials", 5000);
  const seed = arg("seed", Date.now() % 1_000_000);
  const t0 = performance.now();
  let done = 0;
  const { trials: all, table } = await runTrials({
    trials,
    seed,
    timeoutMs: arg("timeout", 15_000),
    workers: arg("workers", 2),
    onTrial: () => {
      if (++done % 250 === 0) process.stderr.write(`${done}/${trials} trials, ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
    },
  });
  console.log(`damage stress: ${trials} trials, seed ${seed}, ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  console.log(formatTable(table));
  const bad = all.filter((t) => t.cls !== "ok" && t.cls !== "coded error" && t.cls !== "unchecked damage");
  if (bad.length > 0) {
    console.log(`\nexamples of each other class:`);
    for (const cls of CLASSES) {
      const ex = bad.filter((t) => t.cls === cls).slice(0, 3);
      for (const t of ex) console.log(`  ${cls}: #${t.n} ${t.kind} ${t.mode} [${t.damage}] ${t.detail}`);
    }
  }
}

if (process.argv.includes("--worker")) await workerMain();
else if (process.argv[1] === SELF) await main();
