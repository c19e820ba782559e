/**
 * A log's stable identity, for the `Nats-Msg-Id` of what the push bridge
 * publishes (`<log id>:<seq>`).
 *
 * The log format has no id field (log.meta holds only its creation time),
 * and the bridge does not change the format: the id lives in its own small
 * file in the log's directory, `bridge.id`, made once (written to a
 * temporary name and linked into place, so concurrent bridges agree on one)
 * and never changed. It holds 16 random bytes in hex, then the log's
 * creation time from log.meta: a log deleted and re-created in the same
 * directory (new creation time) gets a new id rather than colliding with
 * the old one's message ids.
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { MmapError, sys, toMmapError } from "../core/errors.ts";
import { META_CREATED_AT_OFFSET, META_FILE_NAME } from "../log/layout.ts";
import { linkNoClobber, tempName } from "../core/temp-file.ts";

export const LOG_ID_FILE = "bridge.id";
const ID_PATTERN = /^([0-9a-f]{32}) (\d+)\n$/;

/** The creation time stored in log.meta, as an integer string (read, not mapped; validated as untrusted). */
function createdAt(dir: string): string {
  const file = path.join(dir, META_FILE_NAME);
  const buf = Buffer.alloc(8);
  const fd = sys(file, () => fs.openSync(file, "r"));
  try {
    if (fs.readSync(fd, buf, 0, 8, META_CREATED_AT_OFFSET) !== 8) throw new MmapError("ERR_CORRUPT", `${file} is too short`, { path: file });
  } finally {
    fs.closeSync(fd);
  }
  const t = buf.readDoubleLE(0);
  if (!Number.isFinite(t) || t < 0) throw new MmapError("ERR_CORRUPT", `${file} has no valid creation time`, { path: file });
  return String(Math.trunc(t));
}

/** The id of the log in `dir`: read from bridge.id, or made and stored there. */
export function logId(dir: string): string {
  const file = path.join(dir, LOG_ID_FILE);
  const born = createdAt(dir);
  for (let attempt = 0; attempt < 3; attempt++) {
    let text: string | undefined;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw toMmapError(error, file);
    }
    if (text !== undefined) {
      const m = ID_PATTERN.exec(text);
      if (m === null) throw new MmapError("ERR_CORRUPT", `${file} is not a bridge id file (expected 32 hex digits and the log's creation time)`, { path: file });
      if (m[2] === born) return m[1]!;
      // A new log in an old directory: its old id would collide with the old log's messages.
      sys(file, () => fs.rmSync(file, { force: true }));
    }
    const tmp = tempName(dir, LOG_ID_FILE);
    sys(tmp, () => fs.writeFileSync(tmp, `${crypto.randomBytes(16).toString("hex")} ${born}\n`, { mode: 0o600, flag: "wx" }));
    try {
      const fd = fs.openSync(tmp, "r");
      try {
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      linkNoClobber(tmp, file, file); // false: another bridge made it first; read theirs
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw toMmapError(error, file);
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }
  throw new MmapError("ERR_BUSY", `could not settle the bridge id in ${file}`, { path: file });
}
