"use strict";
// The CommonJS entry (`require("memmap")`). memmap is an ES module; Node.js
// 20.19+ and 22.12+ load ES modules with require(), so this hands over to it
// and, on an older Node.js, says what to do instead.
try {
  module.exports = require("./dist/index.js");
} catch (error) {
  if (error && error.code === "ERR_REQUIRE_ESM") {
    const e = new Error(
      `memmap is an ES module and Node.js ${process.version} cannot require() it: ` +
        'use `const memmap = await import("memmap")`, or Node.js 20.19+ / 22.12+.',
      { cause: error },
    );
    e.code = "ERR_REQUIRE_ESM";
    throw e;
  }
  throw error;
}
