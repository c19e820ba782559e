/**
 * The layering of docs/architecture.md, checked from the source tree: every
 * layer imports only itself and the layers below it, and the CLI only the
 * public entry point (src/index.ts). Reads the files as text; runs nothing.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const SRC = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "src");

/** What each folder of src/ may import from src/, besides itself ("index.ts" is src/index.ts). */
const MAY_IMPORT: Record<string, readonly string[]> = {
  core: [],
  views: ["core"],
  channel: ["core"],
  log: ["core"],
  bridge: ["core", "log"],
  cli: ["index.ts"],
};

/** Every module specifier of a TypeScript file: import/export … from, import(), require(). */
function specifiers(source: string): string[] {
  const found: string[] = [];
  const patterns = [/\bfrom\s+"([^"]+)"/g, /\bimport\s*\(\s*"([^"]+)"\s*\)/g, /\brequire\s*\(\s*"([^"]+)"\s*\)/g, /^\s*import\s+"([^"]+)"/gm];
  for (const pattern of patterns) for (const m of source.matchAll(pattern)) found.push(m[1]!);
  return found;
}

function tsFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? tsFiles(p) : e.name.endsWith(".ts") ? [p] : [];
  });
}

/** The layer a file of src/ belongs to: its top folder, or "index.ts" for the entry point. */
function layerOf(file: string): string {
  return path.relative(SRC, file).split(path.sep)[0]!;
}

test("src/ has exactly the layers of docs/architecture.md, each a folder, and the one entry point", () => {
  const entries = fs.readdirSync(SRC).sort();
  assert.deepEqual(entries, [...Object.keys(MAY_IMPORT), "index.ts"].sort());
  const doc = fs.readFileSync(path.join(SRC, "..", "docs", "architecture.md"), "utf8");
  for (const layer of Object.keys(MAY_IMPORT)) assert.ok(doc.includes(`src/${layer}/`), `docs/architecture.md does not name src/${layer}/`);
});

test("every layer imports only itself and the layers below it; the CLI only src/index.ts", () => {
  const wrong: string[] = [];
  for (const file of tsFiles(SRC)) {
    const from = layerOf(file);
    const source = fs.readFileSync(file, "utf8");
    for (const spec of specifiers(source)) {
      if (!spec.startsWith(".")) continue; // node: built-ins and packages
      const target = path.resolve(path.dirname(file), spec);
      if (!fs.existsSync(target)) wrong.push(`${path.relative(SRC, file)} imports ${spec}, which does not exist`);
      else if (!target.startsWith(SRC + path.sep)) wrong.push(`${path.relative(SRC, file)} imports ${spec}, outside src/`);
      else {
        const to = layerOf(target);
        const allowed = from === "index.ts" ? to !== "cli" : to === from || MAY_IMPORT[from]!.includes(to);
        if (!allowed) wrong.push(`${path.relative(SRC, file)} (${from}) imports ${spec} (${to})`);
      }
    }
  }
  assert.deepEqual(wrong, []);
});

test("the checker sees each form of import", () => {
  const text = `import a from "./a.ts";\nimport type { B } from "../b.ts";\nexport { c } from "./c.ts";\nconst d = await import("./d.ts");\nrequire("./e.cjs");\nimport "./f.ts";`;
  assert.deepEqual(specifiers(text).sort(), ["../b.ts", "./a.ts", "./c.ts", "./d.ts", "./e.cjs", "./f.ts"]);
});

test("no source file is over 600 lines (src/**/*.ts, native/*.c and *.h)", () => {
  const native = path.join(SRC, "..", "native");
  const files = [...tsFiles(SRC), ...fs.readdirSync(native).filter((n) => /\.[ch]$/.test(n)).map((n) => path.join(native, n))];
  const long = files
    .map((f) => ({ file: path.relative(path.join(SRC, ".."), f), lines: fs.readFileSync(f, "utf8").split("\n").length - 1 }))
    .filter((f) => f.lines > 600);
  assert.deepEqual(long, [], "split these files by responsibility");
});
