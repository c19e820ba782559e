/**
 * Issue 16.5: an explicit `mode` is applied exactly, whatever the process's
 * umask (a mode chosen to share a file must not depend on it), and bits
 * above 0o777 (setuid, setgid, sticky) are refused.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, test } from "node:test";
import { createChannel, createRecordFile, mapFile, struct } from "../src/index.ts";
import { FIXTURES_DIR, makeTmpDir, removeTmpDir, throwsCode } from "./fixtures/core-helpers.ts";

let dir: string;
before(() => (dir = makeTmpDir()));
after(() => removeTmpDir(dir));

function modesUnder(umask: string): Record<string, string> {
  const out = execFileSync(
    process.execPath,
    ["--import", "tsx", path.join(FIXTURES_DIR, "security-mode-child.ts"), umask, dir, "666", "640"],
    { encoding: "utf8", timeout: 60_000 },
  );
  return JSON.parse(out) as Record<string, string>;
}

for (const umask of ["022", "077"]) {
  test(`under umask ${umask}, modes 0o666 and 0o640 are applied exactly by mapFile, createChannel and createRecordFile`, () => {
    const got = modesUnder(umask);
    const expected: Record<string, string> = {};
    for (const m of ["666", "640"])
      for (const f of ["mapFile", "createChannel", "createRecordFile"]) expected[`${f} ${m}`] = m;
    expected.default = "600";
    assert.deepEqual(got, expected);
  });
}

test("a mode with bits above 0o777 (setuid, setgid, sticky) is ERR_INVALID_ARG, and nothing is created", () => {
  const file = path.join(dir, "setuid.bin");
  throwsCode(() => mapFile(file, { access: "write", create: true, size: 1, mode: 0o4755 }), "ERR_INVALID_ARG", /0o777/);
  throwsCode(() => createChannel(path.join(dir, "setuid-channel"), { mode: 0o4755 }), "ERR_INVALID_ARG", /0o777/);
  throwsCode(() => createRecordFile(path.join(dir, "setuid.rec"), struct({ x: "u8" }), { mode: 0o2640 }), "ERR_INVALID_ARG", /0o777/);
  throwsCode(() => createChannel(path.join(dir, "sticky-channel"), { mode: 0o1600 }), "ERR_INVALID_ARG");
  assert.deepEqual(
    fs.readdirSync(dir).filter((n) => n.includes("setuid") || n.includes("sticky")),
    [],
  );
});
