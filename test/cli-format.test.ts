/**
 * The CLI's number formatting, on the figures a user reported.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { formatPercent, percent } from "../src/cli/common.ts";

test("percentages round down: only a whole is 100%, and some-but-little is <0.1%", () => {
  assert.equal(formatPercent(117_170, 117_188), "99.9%"); // was "100%" with 18 pages not resident
  assert.equal(formatPercent(2047, 2048), "99.9%");
  assert.equal(formatPercent(2048, 2048), "100%");
  assert.equal(formatPercent(1, 3), "33.3%");
  assert.equal(formatPercent(2, 3), "66.6%");
  assert.equal(formatPercent(1, 100_000), "<0.1%");
  assert.equal(formatPercent(0, 10), "0%");
  assert.equal(formatPercent(0, 0), "0%");
  assert.equal(percent(3, 10), 30);
  assert.equal(percent(57, 100), 57);
});
