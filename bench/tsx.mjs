// `node --import ./bench/tsx.mjs` runs the TypeScript benchmarks. tsx is found
// from this file's folder upwards (bench/node_modules, the repository's or the
// installing project's node_modules), not from the working directory, so the
// same scripts run in a clone and in an installed package.
import "tsx";
