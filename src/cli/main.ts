#!/usr/bin/env node
/**
 * The `memmap` command's entry point (package.json "bin"). See program.ts.
 */
import { EXIT_OK } from "./common.ts";
import { main } from "./program.ts";

// A closed pipe (memmap peek … | head) is not an error.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(EXIT_OK);
  throw error;
});

process.exitCode = await main(process.argv);
