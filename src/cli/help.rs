//! The examples and notes below each command's `--help`.

pub const CHECK: &str = "\
Examples:
  multiarch check
  multiarch check -f services/multiarch.toml

Exit code 2 when the file has problems; every problem is shown with its line, a label and a hint.";

pub const PLAN: &str = "\
Examples:
  multiarch plan
  multiarch plan --branch main --sha $(git rev-parse HEAD)
  multiarch plan --format json > plan.json
  multiarch plan --format dot | dot -Tsvg > plan.svg
  multiarch plan --image api --arch arm64v8 --stage build";

pub const CI: &str = "\
Examples:
  multiarch ci gitlab -o .gitlab-ci.yml
  multiarch ci github -o .github/workflows/images.yml
  multiarch ci gitlab --executor shell -o .gitlab-ci.yml   # a shell runner with docker
  multiarch ci gitlab --check -o .gitlab-ci.yml            # in CI: is the file up to date?

Exit codes: 0 written (or up to date), 1 --check found the file out of date, 2 the spec
or a path is wrong.";

pub const RUN: &str = "\
Examples:
  multiarch run
  multiarch run -j 4 --fail-fast
  multiarch run --dry-run
  multiarch run --arch arm64v8 --stage build --stage push   # one CI shard
  multiarch run --stage publish --stage verify              # the publish job
  multiarch run --junit report.xml                          # GitLab/GitHub test report
  multiarch run --events - | jq -c 'select(.event == \"step-finished\")'
  multiarch run --progress plain > run.log

On a terminal a live view shows every running step; elsewhere each line is
prefixed with its step id; in GitLab CI and GitHub Actions each step's log is a
collapsible section. The run ends with a summary of every step and what was
published.";

pub const DOCTOR: &str = "\
Examples:
  multiarch doctor
  multiarch doctor -f services/multiarch.toml
  multiarch doctor --branch main      # what a build of main would publish

Each check is one line: ok, FAIL or warn, then the fix. Exit code 0 when a run
could succeed, 2 when the file or arguments are wrong, 3 when the machine is not
ready. Only loopback and [project] insecure_registries registries are contacted.";

pub const INIT: &str = "\
Examples:
  multiarch init
  multiarch init --arch amd64 --arch arm64v8 --arch arm32v7
  multiarch init --force          # overwrite an existing multiarch.toml

Finds Dockerfile, *.Dockerfile, Containerfile and per-arch files (Dockerfile.aarch64,
Dockerfile_armhf, arm64.Dockerfile, arm64v8/Dockerfile; not in target/, node_modules/,
vendor/ or hidden directories). The file it writes passes `multiarch check`.";

pub const COMPLETIONS: &str = "\
Examples:
  multiarch completions bash > ~/.local/share/bash-completion/completions/multiarch
  multiarch completions zsh > \"${fpath[1]}/_multiarch\"
  multiarch completions fish > ~/.config/fish/completions/multiarch.fish";
