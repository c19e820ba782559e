/**
 * Issue 16: a file in a shared directory (/tmp, /dev/shm) must not let
 * another user choose what root writes or creates. The attacker's steps run
 * as uid 65534; the kernel's symlink protection is not relied on (this
 * machine runs with fs.protected_symlinks=0).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { createChannel, createRecordFile, mapFile, struct } from "../src/index.ts";
import { makeTmpDir, removeTmpDir, throwsCode } from "./fixtures/core-helpers.ts";

const NOBODY = { uid: 65534, gid: 65534 };
const SECRET = Buffer.from("root-only secret\n");
const isRoot = process.getuid?.() === 0;
const SHARED_DIRS = ["/tmp", "/dev/shm"].filter((d) => fs.existsSync(d));

let secretDir: string;
let secret: string;
let dir: string;
const planted: string[] = [];

before(() => {
  secretDir = fs.mkdtempSync("/tmp/memmap-secret-");
  fs.chmodSync(secretDir, 0o700);
  secret = path.join(secretDir, "secret");
  fs.writeFileSync(secret, SECRET, { mode: 0o600 });
  dir = makeTmpDir();
});
after(() => {
  for (const p of planted) fs.rmSync(p, { force: true });
  removeTmpDir(secretDir);
  removeTmpDir(dir);
});

/** As uid 65534: a symlink at `shared/<random>` to `target`. */
function plantSymlink(shared: string, target: string): string {
  const link = path.join(shared, `memmap-t16-${randomBytes(6).toString("hex")}.bin`);
  planted.push(link);
  execFileSync("ln", ["-s", target, link], NOBODY);
  assert.equal(fs.lstatSync(link).uid, 65534);
  return link;
}

function assertSecretUntouched(): void {
  const st = fs.statSync(secret);
  assert.equal(st.size, SECRET.length, "the secret was grown");
  assert.deepEqual(fs.readFileSync(secret), SECRET, "the secret was written");
}

describe("16.1 symlinks planted in shared directories", { skip: !isRoot && "needs root (the attacker is uid 65534)" }, () => {
  for (const shared of SHARED_DIRS) {
    test(`create: true refuses a symlink planted in ${shared} (ELOOP naming the path); the secret is untouched`, () => {
      const link = plantSymlink(shared, secret);
      const e = throwsCode(() => mapFile(link, { access: "write", create: true, size: 8192 }), "ELOOP", /symbolic link/);
      assert.equal((e as { path?: string }).path, link);
      assert.ok(e.message.includes(link));
      assertSecretUntouched();
    });

    test(`access "write" refuses a symlink planted in ${shared}; the secret is untouched`, () => {
      const link = plantSymlink(shared, secret);
      throwsCode(() => mapFile(link, { access: "write" }), "ELOOP");
      throwsCode(() => mapFile(link, { access: "write", size: 8192 }), "ELOOP");
      assertSecretUntouched();
    });

    test(`a dangling symlink planted in ${shared} does not make root create its target`, () => {
      const target = path.join(secretDir, "created-by-root");
      const link = plantSymlink(shared, target);
      throwsCode(() => mapFile(link, { access: "write", create: true, size: 4096 }), "ELOOP");
      assert.equal(fs.existsSync(target), false);
    });
  }

  test("createChannel and createRecordFile at a planted symlink: EEXIST, or with replace/overwrite the link itself is replaced", () => {
    const shared = SHARED_DIRS[SHARED_DIRS.length - 1]!;
    const channelLink = plantSymlink(shared, secret);
    throwsCode(() => createChannel(channelLink), "EEXIST");
    createChannel(channelLink, { replace: true, capacity: 4096 }).close();
    assert.ok(fs.lstatSync(channelLink).isFile() && fs.lstatSync(channelLink).uid === 0);
    const recordLink = plantSymlink(shared, secret);
    throwsCode(() => createRecordFile(recordLink, struct({ x: "u32" })), "EEXIST");
    createRecordFile(recordLink, struct({ x: "u32" }), { overwrite: true }).close();
    assert.ok(fs.lstatSync(recordLink).isFile());
    assertSecretUntouched();
    assert.deepEqual(fs.readdirSync(shared).filter((n) => n.includes("memmap-t16-") && n.endsWith(".tmp")), []);
  });

  test("read access still follows symlinks (a stray write never reaches the file)", () => {
    const link = plantSymlink(SHARED_DIRS[0]!, secret);
    using m = mapFile(link);
    assert.deepEqual(Buffer.from(m.bytes), SECRET);
  });

  test("followSymlinks: true opts in, for a symlink the caller made", () => {
    const target = path.join(dir, "target.bin");
    fs.writeFileSync(target, Buffer.alloc(16));
    const link = path.join(dir, "link.bin");
    fs.symlinkSync(target, link);
    {
      using m = mapFile(link, { access: "write", create: true, size: 32, followSymlinks: true });
      m.bytes[0] = 7;
    }
    assert.equal(fs.statSync(target).size, 32);
    assert.equal(fs.readFileSync(target)[0], 7);
    throwsCode(() => mapFile(link, { followSymlinks: "yes" as never }), "ERR_INVALID_ARG");
  });

  test("a file with another hard link is refused for writing unless allowHardLinks: true", () => {
    const original = path.join(dir, "original.bin");
    fs.writeFileSync(original, Buffer.alloc(64, 1));
    const alias = path.join(dir, "alias.bin");
    fs.linkSync(original, alias);
    const e = throwsCode(() => mapFile(alias, { access: "write", size: 128 }), "ERR_INSECURE", /2 hard links.*allowHardLinks/);
    assert.equal((e as { path?: string }).path, alias);
    assert.equal(fs.statSync(original).size, 64, "nothing was grown before the check");
    mapFile(alias).close(); // reading is fine
    {
      using m = mapFile(alias, { access: "write", allowHardLinks: true });
      m.bytes[0] = 9;
    }
    assert.equal(fs.readFileSync(original)[0], 9);
  });
});
