/**
 * Every bad input gives a coded MmapError with a message that says what was
 * expected, and a failure leaves nothing behind: no descriptor, no grown
 * file, no created file.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { MmapError, mapFile, type MmapErrorCode, createSharedMemory, evictFile } from "../src/index.ts";
import { fdCount, makeTmpDir, removeTmpDir, runChild, throwsCode, withTmpfs } from "./fixtures/core-helpers.ts";

let dir: string;
let small: string; // 1000 bytes
before(() => {
  dir = makeTmpDir();
  small = path.join(dir, "small.bin");
  fs.writeFileSync(small, Buffer.alloc(1000, 1));
});
after(() => removeTmpDir(dir));

function shape(e: unknown): { code: unknown; syscall: unknown; path: unknown } {
  const x = e as MmapError;
  return { code: x.code, syscall: x.syscall, path: x.path };
}

describe("system errors", () => {
  test("a missing file is ENOENT, with syscall and path, and the path in the message", () => {
    const missing = path.join(dir, "missing.bin");
    const e = throwsCode(() => mapFile(missing), "ENOENT", /no such file/);
    assert.ok(e instanceof MmapError && e instanceof Error);
    assert.deepEqual(shape(e), { code: "ENOENT", syscall: "open", path: missing });
    assert.ok(e.message.includes(missing));
    throwsCode(() => mapFile(missing, { access: "write" }), "ENOENT");
  });

  test("a directory is EISDIR, whatever the access", () => {
    const e = throwsCode(() => mapFile(dir), "EISDIR", /directory/);
    assert.equal((e as MmapError).path, dir);
    throwsCode(() => mapFile(dir, { access: "write" }), "EISDIR");
    throwsCode(() => mapFile(dir, { access: "copy" }), "EISDIR");
  });

  test("a device is ENODEV: only regular files are mapped", () => {
    throwsCode(() => mapFile("/dev/zero"), "ENODEV", /regular files/);
    throwsCode(() => mapFile("/dev/null", { access: "write" }), "ENODEV");
  });

  test("a FIFO fails at once with ENODEV instead of blocking in open()", async () => {
    const fifo = path.join(dir, "fifo");
    execFileSync("mkfifo", [fifo]);
    // In a child: a regression would block the whole process in open(2).
    const { code, signal, messages } = await runChild("core-errors-child.ts", ["fifo", fifo], { timeoutMs: 10_000 });
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, "the child blocked opening the FIFO");
    assert.equal(messages[0]?.code, "ENODEV");
  });

  test("write access through a descriptor opened read-only is EACCES (from mmap)", () => {
    const fd = fs.openSync(small, "r");
    try {
      const e = throwsCode(() => mapFile(fd, { access: "write" }), "EACCES");
      assert.equal((e as MmapError).syscall, "mmap");
    } finally {
      fs.closeSync(fd);
    }
  });

  test("a descriptor that is not open is EBADF", () => {
    const fd = fs.openSync(small, "r");
    fs.closeSync(fd);
    throwsCode(() => mapFile(fd), "EBADF");
  });

  test("no permission (as an unprivileged user): EACCES for a 0600 file of root's and for write access to a 0444 file", async () => {
    const perms = path.join(dir, "perms");
    fs.mkdirSync(perms);
    fs.chmodSync(dir, 0o755); // the unprivileged child must be able to reach the files
    fs.chmodSync(perms, 0o755);
    fs.writeFileSync(path.join(perms, "secret.bin"), "secret", { mode: 0o600 });
    fs.writeFileSync(path.join(perms, "readonly.bin"), "read only");
    fs.chmodSync(path.join(perms, "readonly.bin"), 0o444);
    fs.mkdirSync(path.join(perms, "locked"), { mode: 0o755 });
    const { code, signal, messages, stderr } = await runChild("core-errors-child.ts", ["unprivileged", perms]);
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, stderr);
    const r = messages[0] as Record<string, Record<string, unknown>>;
    assert.equal(r.uid, 65534 as never);
    for (const key of ["secretRead", "secretWrite", "readOnlyWrite", "createInLockedDir"]) {
      assert.equal(r[key]!.code, "EACCES", `${key}: ${JSON.stringify(r[key])}`);
      assert.equal(r[key]!.name, "MmapError");
      assert.equal(r[key]!.syscall, "open");
      assert.match(String(r[key]!.message), /permission denied/i);
      assert.match(String(r[key]!.path), /perms/);
    }
    assert.deepEqual(r.readOnlyRead, { ok: true }, "reading the 0444 file is allowed: the failures are about permissions");
    assert.equal(r.fdsLeaked, 0 as never);
    assert.equal(fs.existsSync(path.join(perms, "locked", "new.bin")), false);
  });
});

describe("bad arguments", () => {
  const badNumbers: [string, unknown][] = [
    ["negative", -1], ["non-integer", 1.5], ["NaN", Number.NaN], ["Infinity", Infinity], ["-Infinity", -Infinity],
    ["too large", 2 ** 53], ["a string", "8"], ["a bigint", 8n], ["null", null], ["an object", {}],
  ];

  for (const option of ["size", "offset", "length"] as const) {
    test(`${option}: negative, non-integer, NaN, Infinity, too large or not a number is ERR_INVALID_ARG naming ${option}`, () => {
      for (const [label, value] of badNumbers) {
        const e = throwsCode(
          () => mapFile(small, { access: "write", [option]: value } as never),
          "ERR_INVALID_ARG",
          new RegExp(`^${option} must`),
        );
        assert.ok(e.message.length > option.length + 10, `${label}: the message says what was expected`);
      }
    });
  }

  test("an offset or length beyond the end of the file is ERR_OUT_OF_RANGE, saying how big the file is", () => {
    throwsCode(() => mapFile(small, { offset: 1001 }), "ERR_OUT_OF_RANGE", /beyond the end of the file \(1000 bytes\)/);
    throwsCode(() => mapFile(small, { offset: 2 ** 52 }), "ERR_OUT_OF_RANGE");
    throwsCode(() => mapFile(small, { length: 1001 }), "ERR_OUT_OF_RANGE", /use size to grow it/);
    throwsCode(() => mapFile(small, { offset: 500, length: 501 }), "ERR_OUT_OF_RANGE");
    throwsCode(() => mapFile(small, { length: 2 ** 40 }), "ERR_OUT_OF_RANGE");
  });

  test("an empty file is valid: a mapping of length 0", () => {
    const empty = path.join(dir, "empty.bin");
    fs.writeFileSync(empty, "");
    const m = mapFile(empty);
    assert.equal(m.byteLength, 0);
    assert.equal(m.bytes.length, 0);
    m.close();
  });

  test("create, size and sparse need what they need", () => {
    throwsCode(() => mapFile(small, { create: true }), "ERR_INVALID_ARG", /create needs access "write"/);
    throwsCode(() => mapFile(small, { create: true, access: "copy" }), "ERR_INVALID_ARG", /create needs access "write"/);
    throwsCode(() => mapFile(small, { size: 10 }), "ERR_INVALID_ARG", /size needs access "write"/);
    throwsCode(() => mapFile(small, { access: "write", sparse: true }), "ERR_INVALID_ARG", /sparse only applies together with size/);
    const never = path.join(dir, "never.bin");
    throwsCode(() => mapFile(never, { create: true, access: "read" }), "ERR_INVALID_ARG");
    assert.equal(fs.existsSync(never), false, "validation happens before any file is created");
  });

  test("unknown options and unknown option values are ERR_INVALID_ARG listing what is allowed", () => {
    throwsCode(() => mapFile(small, { acess: "write" } as never), "ERR_INVALID_ARG", /unknown option "acess" \(expected one of: access, /);
    throwsCode(() => mapFile(small, { access: "rw" } as never), "ERR_INVALID_ARG", /access must be one of "read", "write", "copy", got "rw"/);
    throwsCode(() => mapFile(small, { access: 1 } as never), "ERR_INVALID_ARG", /access must be one of/);
    throwsCode(() => mapFile(small, { advice: "dontneed" } as never), "ERR_INVALID_ARG", /advice must be one of "normal", "sequential", "random", "willneed"/);
    for (const flag of ["create", "sparse", "populate"])
      throwsCode(() => mapFile(small, { access: "write", [flag]: "yes" } as never), "ERR_INVALID_ARG", new RegExp(`${flag} must be a boolean`));
    throwsCode(() => mapFile(small, { access: "write", mode: 0o10000 }), "ERR_INVALID_ARG", /mode must be permission bits/);
    throwsCode(() => mapFile(small, null as never), "ERR_INVALID_ARG", /options must be an object/);
    throwsCode(() => mapFile(small, "write" as never), "ERR_INVALID_ARG", /options must be an object/);
  });

  test("evictFile rejects unknown option keys, naming the allowed ones", () => {
    throwsCode(() => evictFile(small, { lenght: 10 } as never), "ERR_INVALID_ARG", /evictFile: unknown option "lenght" \(expected one of: offset, length, flush\)/);
  });

  test("createSharedMemory rejects unknown option keys, naming the allowed ones", () => {
    throwsCode(() => createSharedMemory(4096, { nmae: "x" } as never), "ERR_INVALID_ARG", /createSharedMemory: unknown option "nmae" \(expected one of: name\)/);
  });

  test("a path or descriptor of the wrong kind is ERR_INVALID_ARG", () => {
    throwsCode(() => mapFile("" as string), "ERR_INVALID_ARG", /path must not be empty/);
    for (const bad of [undefined, null, true, {}, [], 1n])
      throwsCode(() => mapFile(bad as never), "ERR_INVALID_ARG", /expected a path or a file descriptor/);
    throwsCode(() => mapFile(-1), "ERR_INVALID_ARG", /fd must not be negative/);
    throwsCode(() => mapFile(3.5), "ERR_INVALID_ARG", /fd must be an integer/);
    throwsCode(() => mapFile(2 ** 31), "ERR_INVALID_ARG", /fd must be at most/);
  });
});

describe("no partial state after a failure", () => {
  test("no failure above leaks a descriptor", () => {
    const before = fdCount();
    const attempts: (() => unknown)[] = [
      () => mapFile(path.join(dir, "missing.bin")),
      () => mapFile(dir),
      () => mapFile("/dev/zero"),
      () => mapFile(small, { offset: 1001 }),
      () => mapFile(small, { length: 1001, access: "write" }),
      () => mapFile(small, { access: "write", size: 2 ** 50 }),
      () => mapFile(small, { access: "write", size: 2 ** 50, sparse: true }),
      () => mapFile(path.join(dir, "created.bin"), { access: "write", create: true, size: 2 ** 50 }),
      () => mapFile(0.5),
    ];
    for (const attempt of attempts) assert.throws(attempt, MmapError);
    assert.equal(fdCount(), before);
  });

  test("a size the file system refuses (EFBIG) leaves the file as it was; a file made by create is removed again", () => {
    const file = path.join(dir, "grow.bin");
    fs.writeFileSync(file, Buffer.alloc(1000, 7));
    const e = throwsCode(() => mapFile(file, { access: "write", size: 2 ** 50 }), "EFBIG");
    assert.deepEqual(shape(e), { code: "EFBIG", syscall: "fallocate", path: file });
    throwsCode(() => mapFile(file, { access: "write", size: 2 ** 50, sparse: true }), "EFBIG");
    assert.equal(fs.statSync(file).size, 1000);
    assert.ok(fs.readFileSync(file).every((b) => b === 7));
    const created = path.join(dir, "created.bin");
    throwsCode(() => mapFile(created, { access: "write", create: true, size: 2 ** 50 }), "EFBIG");
    assert.equal(fs.existsSync(created), false, "the file create made is removed");
    throwsCode(() => mapFile(created, { access: "write", create: true, offset: 1 }), "ERR_OUT_OF_RANGE");
    assert.equal(fs.existsSync(created), false);
  });

  test("growing a file in memory (/dev/shm) beyond the memory available is ENOMEM before any allocation", () => {
    const file = path.join("/dev/shm", `memmap-test-${process.pid}.bin`);
    try {
      const e = throwsCode(() => mapFile(file, { access: "write", create: true, size: 2 ** 50 }), "ENOMEM", /memory/);
      assert.deepEqual(shape(e), { code: "ENOMEM", syscall: "fallocate", path: file });
      assert.equal(fs.existsSync(file), false, "the file create made is removed");
    } finally {
      fs.rmSync(file, { force: true });
    }
  });

  test("a full disk (a 1 MiB tmpfs) is ENOSPC now, with no half-grown file and no space kept", (t) =>
    withTmpfs(t, dir, "1m", (mnt) => {
      const file = path.join(mnt, "grow.bin");
      fs.writeFileSync(file, Buffer.alloc(100 * 1024, 3));
      const free = fs.statfsSync(mnt).bfree;
      const e = throwsCode(() => mapFile(file, { access: "write", size: 2 * 2 ** 20 }), "ENOSPC", /No space left/);
      assert.deepEqual(shape(e), { code: "ENOSPC", syscall: "fallocate", path: file });
      assert.equal(fs.statSync(file).size, 100 * 1024, "no half-grown file");
      assert.ok(fs.readFileSync(file).every((b) => b === 3));
      assert.equal(fs.statfsSync(mnt).bfree, free, "the blocks allocated before the failure are given back");
      const created = path.join(mnt, "created.bin");
      throwsCode(() => mapFile(created, { access: "write", create: true, size: 2 * 2 ** 20 }), "ENOSPC");
      assert.equal(fs.existsSync(created), false, "the file create made is removed");
      const m = mapFile(file, { access: "write", size: 200 * 1024 }); // a size that fits still works
      assert.equal(m.byteLength, 200 * 1024);
      m.close();
    }, " (the EFBIG test covers the same path)"));
});

describe("the error contract", () => {
  test("MmapErrorCode is closed: memmap's own codes and errno names compile, a misspelled code does not (checked by npm run typecheck)", () => {
    const codes: MmapErrorCode[] = ["ERR_INVALID_ARG", "ERR_INTERNAL", "ERR_NO_ADDON", "ENOENT", "E2BIG", "ERANGE", "EROFS"];
    // @ts-expect-error a misspelled ERR_ code is neither one of memmap's codes nor an errno name
    codes.push("ERR_INVALD_ARG");
    // @ts-expect-error errno names are upper case
    codes.push("Enoent");
    // @ts-expect-error not a code at all
    codes.push("timeout");
    for (const code of codes) assert.equal(new MmapError(code, "m").code, code);
  });

  test("errno numbers are the system's: mapping a directory is EISDIR with os.constants.errno.EISDIR", () => {
    const e = throwsCode(() => mapFile(dir), "EISDIR");
    assert.equal((e as MmapError).errno, os.constants.errno.EISDIR);
  });
});
