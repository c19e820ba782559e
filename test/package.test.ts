/**
 * memmap as a user gets it: `npm pack`, install the tarball into a fresh
 * project (offline; the addon is compiled there by the install script), then
 * `import { mapFile } from "memmap"` and the `memmap` command.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");

test("the npm pack tarball installs offline into another project and works there", { timeout: 240_000 }, () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "memmap-pack-"));
  try {
    const packed = execFileSync("npm", ["pack", "--silent", "--pack-destination", work], { cwd: root, encoding: "utf8" });
    const tarball = path.join(work, packed.trim().split("\n").pop()!);
    assert.ok(fs.existsSync(tarball), `npm pack made ${tarball}`);
    const listing = execFileSync("tar", ["tzf", tarball], { encoding: "utf8" });
    assert.match(listing, /package\/dist\/index\.js/);
    assert.match(listing, /package\/dist\/index\.d\.ts/);
    assert.match(listing, /package\/native\/mapping\.c/);
    assert.match(listing, /package\/binding\.gyp/);
    assert.doesNotMatch(listing, /package\/build\//, "no prebuilt binary: the addon is compiled on install");
    assert.doesNotMatch(listing, /package\/test\//);

    const app = path.join(work, "app");
    fs.mkdirSync(app);
    fs.writeFileSync(
      path.join(app, "package.json"),
      JSON.stringify({ name: "app", version: "1.0.0", type: "module", private: true, allowScripts: { memmap: true } }),
    );
    execFileSync("npm", ["install", "--offline", "--no-audit", "--no-fund", tarball], { cwd: app, stdio: "pipe" });
    assert.ok(
      fs.existsSync(path.join(app, "node_modules", "memmap", "build", "Release", "memmap.node")),
      "the addon was built in the installing project",
    );

    const data = path.join(app, "data.bin");
    fs.writeFileSync(data, "mapped from an installed package");
    fs.writeFileSync(
      path.join(app, "main.js"),
      `import { mapFile, MmapError } from "memmap";
       const m = mapFile(${JSON.stringify(data)});
       process.stdout.write(new TextDecoder().decode(m.bytes));
       m.close();
       try { mapFile("/nonexistent/file"); } catch (e) { process.stdout.write(" " + (e instanceof MmapError) + " " + e.code); }`,
    );
    const run = spawnSync(process.execPath, ["main.js"], { cwd: app, encoding: "utf8" });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout, "mapped from an installed package true ENOENT");

    // TypeScript users get the declarations.
    const dts = fs.readFileSync(path.join(app, "node_modules", "memmap", "dist", "index.d.ts"), "utf8");
    assert.match(dts, /mapFile/);

    const cli = spawnSync(path.join(app, "node_modules", ".bin", "memmap"), ["--help"], { cwd: app, encoding: "utf8" });
    assert.equal(cli.status, 0, cli.stderr);
    assert.match(cli.stdout, /Usage: memmap/);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
});
