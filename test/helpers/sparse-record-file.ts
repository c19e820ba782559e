/** Record files past 4 GiB without writing them: a sparse file whose header says `count` rows are there. */
import * as fs from "node:fs";
import { createRecordFile, type Layout } from "../../src/index.ts";
import { ROW_COUNT_OFFSET, encodeRowCount } from "../../src/views/record-format.ts";

/** Makes `file` a record file of `layout` with room for `rows` rows (a hole: all zero) and publishes `count` of them. */
export function sparseRecordFile(file: string, layout: Layout, rows: number, count: number): { headerLength: number } {
  const out = createRecordFile(file, layout, { capacity: 1 });
  const headerLength = out.headerLength;
  out.close();
  fs.truncateSync(file, headerLength + rows * layout.byteLength);
  const fd = fs.openSync(file, "r+");
  const word = Buffer.alloc(8);
  word.writeBigInt64LE(encodeRowCount(count, true));
  fs.writeSync(fd, word, 0, 8, ROW_COUNT_OFFSET);
  fs.closeSync(fd);
  return { headerLength };
}
