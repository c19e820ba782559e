/**
 * A channel file is written by other processes: a corrupt header, or
 * positions and lengths that point outside the ring (from a buggy or hostile
 * peer), must give ERR_CORRUPT — never an out-of-bounds access, an endless
 * loop, a hang or a crash.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { makeTmpDir, removeTmpDir } from "./helpers/tmp.ts";
import { createChannel, inspectChannel, mapFile, MmapError, openChannel, type Channel } from "../src/index.ts";
import * as L from "../src/channel/layout.ts";
import { prng } from "./fixtures/channel-stream.ts";

let dir: string;
let n = 0;
before(() => (dir = makeTmpDir()));
after(() => removeTmpDir(dir));

/** Writes into a channel file through a second, shared mapping, as another process would. */
function poke(file: string, write: (view: DataView) => void): void {
  const m = mapFile(file, { access: "write" });
  try {
    write(new DataView(m.buffer));
  } finally {
    m.close();
  }
}

function fresh(options: Parameters<typeof createChannel>[1] = {}): string {
  const file = path.join(dir, `ch-${n++}`);
  createChannel(file, { capacity: 4096, ...options }).close();
  return file;
}

function isCorrupt(error: unknown): boolean {
  return error instanceof MmapError && error.code === "ERR_CORRUPT";
}

describe("a corrupt header is rejected by openChannel() and inspectChannel()", () => {
  const cases: [string, (v: DataView) => void][] = [
    ["a wrong magic number", (v) => v.setUint8(L.MAGIC_OFFSET + 3, 0x58)],
    ["a version from the future", (v) => v.setUint32(L.VERSION_OFFSET, L.CHANNEL_VERSION + 1, true)],
    ["a header length of 8192", (v) => v.setUint32(L.HEADER_LENGTH_OFFSET, 8192, true)],
    ["a capacity that is not a power of two", (v) => v.setUint32(L.CAPACITY_OFFSET, 5000, true)],
    ["a capacity under 4 KiB", (v) => v.setUint32(L.CAPACITY_OFFSET, 2048, true)],
    ["a capacity over 1 GiB", (v) => v.setUint32(L.CAPACITY_OFFSET, 2 ** 31, true)],
    ["a capacity larger than the file", (v) => v.setUint32(L.CAPACITY_OFFSET, 1 << 20, true)],
    ["unknown flags", (v) => v.setUint32(L.FLAGS_OFFSET, 0x80, true)],
    ["another slot table", (v) => v.setUint32(L.SLOT_COUNT_OFFSET, 99, true)],
    ["a head position that is not a multiple of 8", (v) => v.setBigInt64(L.HEAD_POSITION_OFFSET, 3n, true)],
    ["a tail position past 2^52", (v) => v.setBigInt64(L.TAIL_POSITION_OFFSET, 2n ** 60n, true)],
    ["a negative tail position", (v) => v.setBigInt64(L.TAIL_POSITION_OFFSET, -8n, true)],
    ["a head ahead of the tail", (v) => v.setBigInt64(L.HEAD_POSITION_OFFSET, 64n, true)],
    ["a tail more than the capacity ahead of the head", (v) => v.setBigInt64(L.TAIL_POSITION_OFFSET, 4096n + 8n, true)],
  ];
  for (const [label, mutate] of cases) {
    test(label, () => {
      const file = fresh();
      poke(file, mutate);
      assert.throws(() => openChannel(file), isCorrupt);
      assert.throws(() => inspectChannel(file), isCorrupt);
    });
  }

  for (const version of [1, 2]) {
    test(`version ${version}, from an older memmap: ERR_UNSUPPORTED, saying to recreate it`, () => {
      const file = fresh();
      poke(file, (v) => v.setUint32(L.VERSION_OFFSET, version, true));
      for (const open of [openChannel, inspectChannel])
        assert.throws(() => open(file), (e) => e instanceof MmapError && e.code === "ERR_UNSUPPORTED" && /recreate/.test(e.message) && e.message.includes(file));
    });
  }

  test("a file shorter than the header, and an empty file", () => {
    const file = fresh();
    fs.truncateSync(file, 100);
    assert.throws(() => openChannel(file), isCorrupt);
    assert.throws(() => inspectChannel(file), isCorrupt);
    const empty = path.join(dir, "empty");
    fs.writeFileSync(empty, "");
    assert.throws(() => openChannel(empty), (e) => e instanceof MmapError);
    assert.throws(() => inspectChannel(empty), (e) => e instanceof MmapError);
  });

  test("an arbitrary file is not a channel", () => {
    const file = path.join(dir, "random");
    fs.writeFileSync(file, Buffer.alloc(8192, 0x41));
    assert.throws(() => openChannel(file), isCorrupt);
  });
});

describe("hostile values in a live channel", () => {
  /** A channel holding one 100-byte message; the consumer is attached before the poke. */
  function withMessage(producers: "single" | "multi"): { file: string; ch: Channel; frameOffset: number } {
    const file = fresh({ producers });
    const ch = openChannel(file);
    assert.equal(ch.tryReceive(), null);
    ch.send(new Uint8Array(100).fill(1));
    return { file, ch, frameOffset: L.HEADER_LENGTH };
  }

  const frameLengths: [string, number][] = [
    ["0", 0],
    ["3 (shorter than a frame header)", 3],
    ["-5", -5],
    ["2^31 - 1", 0x7fffffff],
    ["-2^31", -0x80000000],
    ["capacity + 8", 4096 + 8],
    ["one that runs past the ring's end", 4096 - 8],
    ["one that runs past the producer position", 200],
  ];
  for (const producers of ["single", "multi"] as const) {
    for (const [label, value] of frameLengths) {
      test(`${producers} producer: a frame length of ${label} is ERR_CORRUPT (or waited for, if it may still be written), every time, without advancing`, async () => {
        const { file, ch, frameOffset } = withMessage(producers);
        poke(file, (v) => v.setInt32(frameOffset, value, true));
        const outcomes = new Set<string>();
        for (let i = 0; i < 3; i++) {
          try {
            const m = ch.receive({ timeout: 60 });
            outcomes.add(`message of ${m.length}`);
          } catch (error) {
            assert.ok(error instanceof MmapError, `a coded error, not ${String(error)}`);
            outcomes.add(error.code);
          }
        }
        if (producers === "single" || value > 0) assert.deepEqual([...outcomes], ["ERR_CORRUPT"]);
        else {
          // Many producers: 0 or negative is "claimed, still being written"; no live producer
          // owns it, so the consumer seals it — unless its length is impossible.
          for (const o of outcomes) assert.ok(o === "ERR_CORRUPT" || o === "ERR_PEER_GONE" || o === "ERR_TIMEOUT", o);
        }
        ch.close();
      });
    }

    test(`${producers} producer: an unknown frame type is ERR_CORRUPT`, () => {
      const { file, ch, frameOffset } = withMessage(producers);
      poke(file, (v) => v.setUint16(frameOffset + 4, 99, true));
      assert.throws(() => ch.tryReceive(), isCorrupt);
      assert.throws(() => ch.tryReceive(), isCorrupt);
      ch.close();
    });

    test(`${producers} producer: a tail moved past the ring by a peer is ERR_CORRUPT for the consumer`, () => {
      const { file, ch } = withMessage(producers);
      assert.equal(ch.tryReceive()?.length, 100);
      poke(file, (v) => v.setBigInt64(L.TAIL_POSITION_OFFSET, 1_000_000n, true));
      assert.throws(() => ch.tryReceive(), isCorrupt);
      ch.close();
    });

    test(`${producers} producer: a head moved by a peer is ERR_CORRUPT for the producer once it needs room`, () => {
      const file = fresh({ producers });
      const ch = openChannel(file);
      ch.send("x");
      poke(file, (v) => v.setBigInt64(L.HEAD_POSITION_OFFSET, 123_456n * 8n, true));
      assert.throws(() => {
        for (let i = 0; i < 100; i++) ch.trySend(new Uint8Array(200));
      }, isCorrupt);
      ch.close();
    });
  }

  test("garbage in the producer slots (impossible pids, huge claims) costs no hang and no crash", async () => {
    const file = fresh({ producers: "multi" });
    const ch = openChannel(file);
    ch.tryReceive();
    poke(file, (v) => {
      for (let s = 0; s < L.SLOT_COUNT; s++) {
        const base = L.slotOffset(s);
        v.setInt32(base + L.SLOT_PID_OFFSET, s % 2 ? 0x7fffffff : -0x80000000, true);
        v.setBigInt64(base + L.SLOT_CLAIM_START_OFFSET, BigInt(s * 8), true);
        v.setInt32(base + L.SLOT_CLAIM_LENGTH_OFFSET, 0x7fffffff, true);
      }
      v.setBigInt64(L.TAIL_POSITION_OFFSET, 64n, true); // a claim nobody will ever write
    });
    const t0 = performance.now();
    await assert.rejects(ch.receiveAsync({ timeout: 200 }), (e) => e instanceof MmapError);
    assert.ok(performance.now() - t0 < 2000);
    assert.doesNotThrow(() => ch.stats());
    try {
      ch.trySend("x"); // slots of impossible pids count as free
    } catch (error) {
      assert.ok(error instanceof MmapError, String(error));
    }
    ch.close();
  });
});

describe("fuzzing the shared file", () => {
  test("300 rounds of random header words and ring bytes: every operation returns or throws a coded MmapError, quickly", async () => {
    const next = prng(2024);
    const hot = [
      L.TAIL_POSITION_OFFSET, L.TAIL_POSITION_OFFSET + 4, L.HEAD_POSITION_OFFSET, L.HEAD_POSITION_OFFSET + 4,
      L.RELEASE_POSITION_OFFSET, L.DATA_WAITERS_OFFSET, L.SPACE_WAITERS_OFFSET, L.ENDED_OFFSET,
      L.SLOTS_OFFSET, L.SLOTS_OFFSET + L.SLOT_CLAIM_START_OFFSET, L.SLOTS_OFFSET + L.SLOT_CLAIM_LENGTH_OFFSET,
    ];
    const t0 = performance.now();
    const codes = new Map<string, number>();
    for (let round = 0; round < 300; round++) {
      const producers = round % 2 ? "multi" : "single";
      const file = fresh({ producers });
      const ch = openChannel(file);
      const ops: (() => unknown)[] = [
        () => ch.trySend(new Uint8Array(next() % 1500)),
        () => ch.trySendBatch([new Uint8Array(10), "abc", new Uint8Array(next() % 900)]),
        () => ch.tryReceive(),
        () => ch.drain(() => {}),
        () => ch.receive({ timeout: 5 }),
        () => ch.stats(),
        () => ch.peerAlive(),
      ];
      for (let k = 0; k < 5; k++) {
        try {
          ops[next() % ops.length]!();
        } catch (error) {
          assert.ok(error instanceof MmapError, String(error));
        }
      }
      poke(file, (v) => {
        const words = 1 + (next() % 3);
        for (let w = 0; w < words; w++) {
          const at = hot[next() % hot.length]!;
          const value = next() % 4 === 0 ? next() | 0 : (v.getInt32(at, true) + ((next() % 64) - 32) * 8) | 0;
          v.setInt32(at, value, true);
        }
        for (let b = next() % 8; b > 0; b--) v.setUint8(L.HEADER_LENGTH + (next() % 4096), next() & 0xff);
      });
      for (let k = 0; k < 8; k++) {
        try {
          await ops[next() % ops.length]!();
          codes.set("ok", (codes.get("ok") ?? 0) + 1);
        } catch (error) {
          assert.ok(error instanceof MmapError, `round ${round}: ${String((error as Error)?.stack ?? error)}`);
          codes.set(error.code, (codes.get(error.code) ?? 0) + 1);
        }
      }
      try {
        inspectChannel(file);
      } catch (error) {
        assert.ok(error instanceof MmapError, String(error));
      }
      ch.close();
      fs.rmSync(file);
    }
    assert.ok(codes.get("ERR_CORRUPT")! > 0, JSON.stringify([...codes]));
    assert.ok(performance.now() - t0 < 30_000);
  });
});
