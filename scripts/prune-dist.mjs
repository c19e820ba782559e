// After `tsc`: removes files in dist/ whose source in src/ no longer exists (a
// moved or deleted module), so that `npm pack` never ships stale code. It
// deletes only such files, never the whole folder: tests that run the compiled
// CLI may be using dist/ while a build runs.
import * as fs from "node:fs";
import * as path from "node:path";

const root = path.join(path.dirname(new URL(import.meta.url).pathname), "..");
const dist = path.join(root, "dist");
const source = (rel) => path.join(root, "src", rel.replace(/(\.d)?\.js(\.map)?$|\.d\.ts(\.map)?$/, ".ts"));

function prune(dir) {
  if (!fs.existsSync(dir)) return;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      prune(full);
      if (fs.readdirSync(full).length === 0) fs.rmdirSync(full);
    } else if (!fs.existsSync(source(path.relative(dist, full)))) {
      fs.rmSync(full);
    }
  }
}
prune(dist);
