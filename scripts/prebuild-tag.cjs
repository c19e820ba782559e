"use strict";
// The directory name of this platform's prebuilt addon, as src/core/native.ts computes it:
// <platform>-<arch>, with -musl on musl libc (a glibc build does not load there).
module.exports = function prebuildTag() {
  let tag = `${process.platform}-${process.arch}`;
  if (process.platform === "linux" && !process.report?.getReport()?.header?.glibcVersionRuntime) tag += "-musl";
  return tag;
};
