/**
 * A log in a shared directory (issue 16): root's openLog must not adopt a
 * directory another user made or can write, must follow no symbolic link
 * inside the log directory, and names its temporary files unpredictably
 * (created O_EXCL|O_NOFOLLOW). Readers need no ownership. The attacker's
 * steps run as uid 65534 ("nobody"); the kernel's symlink protection is not
 * relied on (these tests plant symlinks where it would not apply anyway).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { openLog } from "../src/index.ts";
import { makeTmpDir, removeTmpDir } from "./fixtures/log-helpers.ts";
import { NOBODY, needsNobody, probe, sharedTmp } from "./helpers/log-probe.ts";

function asNobody(cmd: string[]): void {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { ...NOBODY, encoding: "utf8" });
  assert.equal(r.status, 0, `${cmd.join(" ")}: ${r.stderr}`);
}

test("openLog create:true refuses a directory an attacker made (mode 777, symlinked lock files) and creates or locks nothing they named", needsNobody, () => {
  const tmp = sharedTmp(0o1777);
  const secret = makeTmpDir(); // root-only: where the attacker points
  try {
    const log = path.join(tmp, "log");
    asNobody(["mkdir", "-m", "777", log, path.join(log, "locks")]);
    for (const name of ["open.lock", "meta.lock", "writer-00.lock"]) asNobody(["ln", "-s", path.join(secret, name), path.join(log, "locks", name)]);
    fs.writeFileSync(path.join(secret, "keep"), "root's");
    asNobody(["ln", "-s", path.join(secret, "keep"), path.join(log, "log.meta")]);

    assert.throws(() => openLog(log, { create: true, segmentSize: 64 * 1024 }), (e: Error & { code?: string }) => {
      assert.equal(e.code, "ERR_INSECURE", e.message);
      assert.match(e.message, new RegExp(`'${log}'`));
      assert.match(e.message, /owned by uid 65534/);
      return true;
    });
    assert.deepEqual(fs.readdirSync(secret), ["keep"], "nothing created where the symlinks point");
    assert.equal(fs.readFileSync(path.join(secret, "keep"), "utf8"), "root's");
    assert.deepEqual(fs.readdirSync(log).sort(), ["locks", "log.meta"], "nothing created in the attacker's directory");
    assert.deepEqual(fs.readdirSync(path.join(log, "locks")).sort(), ["meta.lock", "open.lock", "writer-00.lock"]);
  } finally {
    removeTmpDir(tmp);
    removeTmpDir(secret);
  }
});

test("a log directory root owns but others may write is refused, unless the mode option chose it", () => {
  const tmp = makeTmpDir();
  try {
    const log = path.join(tmp, "log");
    fs.mkdirSync(log);
    fs.chmodSync(log, 0o777);
    assert.throws(() => openLog(log, { create: true, segmentSize: 64 * 1024 }), (e: Error & { code?: string }) => {
      assert.equal(e.code, "ERR_INSECURE", e.message);
      assert.match(e.message, /writable by group and others \(mode 0777\)/);
      return true;
    });
    assert.deepEqual(fs.readdirSync(log), []);
    // Chosen explicitly: files 0666, directories 0777.
    const opened = openLog(log, { create: true, segmentSize: 64 * 1024, mode: 0o666 });
    opened.append("shared");
    opened.close();
    assert.equal(fs.statSync(path.join(log, "locks")).mode & 0o777, 0o777);
  } finally {
    removeTmpDir(tmp);
  }
});

test("a symbolic link planted inside a root-owned 0700 log is not followed (refused with ERR_INSECURE)", () => {
  const tmp = makeTmpDir();
  try {
    const log = path.join(tmp, "log");
    const first = openLog(log, { create: true, segmentSize: 64 * 1024 });
    first.append("a");
    first.close();
    const secret = path.join(tmp, "secret");
    fs.writeFileSync(secret, "root's secret");
    const plant = (rel: string): (() => void) => {
      const p = path.join(log, rel);
      const saved = path.join(tmp, "saved");
      fs.renameSync(p, saved);
      fs.symlinkSync(secret, p);
      return () => {
        fs.rmSync(p);
        fs.renameSync(saved, p);
      };
    };
    for (const rel of ["locks/open.lock", "log.meta", "00000000000000000000.seg"]) {
      const undo = plant(rel);
      for (const options of [{}, { create: true }, { readOnly: true }]) {
        assert.throws(() => openLog(log, options).close(), (e: Error & { code?: string }) => {
          assert.equal(e.code, "ERR_INSECURE", `${rel} ${JSON.stringify(options)}: ${e.message}`);
          assert.match(e.message, /symbolic link/);
          assert.ok(e.message.includes(path.join(log, rel)), e.message);
          return true;
        });
      }
      assert.equal(fs.readFileSync(secret, "utf8"), "root's secret", rel);
      undo();
    }
    // A planted writer-slot lock: the first append refuses it, the secret is untouched.
    fs.rmSync(path.join(log, "locks", "writer-00.lock"));
    fs.symlinkSync(secret, path.join(log, "locks", "writer-00.lock"));
    const l = openLog(log);
    assert.throws(() => l.append("b"), { code: "ERR_INSECURE" });
    l.close();
    fs.symlinkSync(secret, path.join(log, "locks", "dangling"));
    // The locks directory itself as a symlink.
    fs.renameSync(path.join(log, "locks"), path.join(tmp, "locks-saved"));
    fs.symlinkSync(path.join(tmp, "locks-saved"), path.join(log, "locks"));
    assert.throws(() => openLog(log), { code: "ERR_INSECURE" });
    assert.equal(fs.readFileSync(secret, "utf8"), "root's secret");
  } finally {
    removeTmpDir(tmp);
  }
});

test("root reads another user's world-readable log read-only, and follows no symlink in it", needsNobody, () => {
  const tmp = sharedTmp(0o1777);
  try {
    const log = path.join(tmp, "log");
    const made = probe(["open", log, JSON.stringify({ create: true, segmentSize: 65536, mode: 0o644 })], NOBODY);
    assert.ok(made.ok, made.message);
    // nobody appends through a second probe run? Simpler: nobody's log is empty; root reads it.
    assert.equal(fs.statSync(log).uid, 65534);
    const ro = openLog(log, { readOnly: true });
    assert.equal(ro.nextSeq, 0);
    ro.close();
    // A writable open of nobody's log is refused: root does not adopt it.
    assert.throws(() => openLog(log), (e: Error & { code?: string }) => e.code === "ERR_INSECURE" && /owned by uid 65534/.test(e.message));
    // nobody swaps the segment for a symlink to a root-only file: root's reader refuses it.
    const secret = path.join(makeTmpDir(), "secret");
    fs.writeFileSync(secret, "x".repeat(65536));
    try {
      const seg = path.join(log, "00000000000000000000.seg");
      asNobody(["mv", seg, `${seg}.away`]);
      asNobody(["ln", "-s", secret, seg]);
      assert.throws(() => openLog(log, { readOnly: true }), { code: "ERR_INSECURE" });
    } finally {
      removeTmpDir(path.dirname(secret));
    }
  } finally {
    removeTmpDir(tmp);
  }
});

test("temporary files are created O_EXCL|O_NOFOLLOW under unpredictable names: a planted symlink at a guessable name is never written through", () => {
  const tmp = makeTmpDir();
  try {
    const target = path.join(tmp, "target");
    fs.writeFileSync(target, "untouched");
    const r = probe(["predictable-temp", path.join(tmp, "log"), target]);
    assert.ok(r.ok, r.message);
    const after = fs.readFileSync(target);
    assert.ok(after.toString() === "untouched", `the target was written through the symlink: now ${after.length} bytes starting ${JSON.stringify(after.subarray(0, 8).toString("latin1"))}`);
  } finally {
    removeTmpDir(tmp);
  }
});

test("a log directory that is a symbolic link another user made is refused (with or without a trailing slash)", needsNobody, () => {
  const tmp = sharedTmp(0o1777);
  const target = makeTmpDir(); // root's own 0700 directory: where the attacker points
  try {
    const log = path.join(tmp, "log");
    asNobody(["ln", "-s", target, log]);
    for (const p of [log, `${log}/`]) {
      assert.throws(() => openLog(p, { create: true, segmentSize: 64 * 1024 }), (e: Error & { code?: string }) => {
        assert.equal(e.code, "ERR_INSECURE", `${p}: ${e.message}`);
        assert.match(e.message, /symbolic link owned by uid 65534/);
        return true;
      });
    }
    assert.deepEqual(fs.readdirSync(target), [], "nothing created where the link points");
    // Root's own symbolic link to its log directory is fine, and a reader may follow anyone's.
    const mine = path.join(target, "mine");
    fs.mkdirSync(path.join(target, "real"), { mode: 0o700 });
    fs.symlinkSync(path.join(target, "real"), mine);
    const l = openLog(mine, { create: true, segmentSize: 64 * 1024 });
    l.append("via a link");
    l.close();
    const r = openLog(log + "/real", { readOnly: true });
    assert.equal(r.nextSeq, 1);
    r.close();
  } finally {
    removeTmpDir(tmp);
    removeTmpDir(target);
  }
});
