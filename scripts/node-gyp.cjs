"use strict";
// npm's own node-gyp: the one npm names to scripts it runs, else the copy bundled with
// npm next to this node; undefined means "node-gyp" from PATH.
const fs = require("node:fs");
const path = require("node:path");
module.exports = function nodeGyp() {
  if (process.env.npm_config_node_gyp) return process.env.npm_config_node_gyp;
  const bundled = path.join(path.dirname(process.execPath), "..", "lib", "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js");
  return fs.existsSync(bundled) ? bundled : undefined;
};
