//! Scheduler efficiency (issue 7, part 2).
//!
//! Method. A spec of 50 images × 4 arches, images in `depends_on` chains of 5, is
//! planned as CI on `main` plans it (setup-qemu, build, test, push, manifest create
//! and push, verify). A fake engine sleeps a known time per step: a base by kind,
//! times 0.75 … 1.25 from a hash of the step id, so durations are uneven but the
//! same on every run. For each `-j N`:
//!
//! - `bound`: max(critical path, total work / N); no schedule beats it.
//! - `sim`: a greedy list schedule with no overhead, simulated: ready steps taken in
//!   longest chain of steps first, then plan order (`chain`, the scheduler's
//!   policy: it knows no durations), or longest remaining time first (`lpt`).
//! - `multiarch`: `exec::pool::drive`, steps sleeping in-process: the pool's
//!   own cost. It is also compared with the bound recomputed from the step times it
//!   measured, which takes out the OS timer's overrun of each sleep.
//! - `+spawn`: the same, each step running `sleep S` through `exec::process` as a
//!   real step runs `docker`: the like-for-like match for make.
//! - `make`: `make -j N` on a generated Makefile of the same DAG, recipes `sleep S`.
//!
//! Then the same DAG with zero-length steps (`true` for the processes): wall time /
//! steps is the fixed cost per step. Medians of 3 rounds, the runners interleaved
//! (quick: 10 images, `-j 2`, 1 round). Nothing here fails on time.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use multiarch::exec::pool::{self, PoolOptions};
use multiarch::exec::process::{self, ProcessTable};
use multiarch::exec::{StepExecutor, StepIo, StepResult};
use multiarch::report::Silent;
use multiarch::{Environment, Plan, Spec, Step, StepKind};

use crate::Result;

const ARCHES: &[&str] = &["amd64", "arm32v7", "arm64v8", "i386"];
const CHAIN: usize = 5;
const SHA: &str = "5c4ed01e5c4ed01e5c4ed01e5c4ed01e5c4ed01e";

/// The step's duration in µs: a base by kind × 0.75 … 1.25 by an FNV-1a hash of the id.
fn cost_us(step: &Step) -> u64 {
    let base = match step.kind() {
        StepKind::SetupQemu | StepKind::Build => 10_000,
        StepKind::Push => 4_000,
        StepKind::Test | StepKind::ManifestPush | StepKind::Verify => 2_500,
        StepKind::ManifestCreate => 1_500,
    };
    let h = step
        .id
        .to_string()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    base * (750 + h % 501) / 1000
}

use super::monorepo;

/// The project: the spec, and a Dockerfile per image context.
fn make_plan(dir: &Path, images: usize) -> Result<Plan> {
    monorepo::write(dir, images, ARCHES, CHAIN, r#"["{sha}"]"#)
        .map_err(|e| format!("cannot write the project in {}: {e}", dir.display()))?;
    let text = monorepo::spec_text(images, ARCHES, CHAIN, r#"["{sha}"]"#);
    let spec = Spec::from_str_in(&text, "multiarch.toml", dir, &Environment::empty())
        .map_err(|e| format!("the generated spec is invalid: {e}"))?;
    let (ctx, opts) = monorepo::main_at(SHA);
    Plan::new(&spec, &ctx, &opts).map_err(|e| format!("cannot plan: {e}"))
}

/// The plan as indices, with a duration (µs) per step.
struct Dag {
    needs: Vec<Vec<usize>>,
    dependents: Vec<Vec<usize>>,
    cost: Vec<u64>,
}

impl Dag {
    fn new(plan: &Plan, cost: impl Fn(&Step) -> u64) -> Result<Dag> {
        let mut needs = Vec::new();
        let mut dependents = vec![Vec::new(); plan.steps().len()];
        for idx in plan.indices() {
            let ns: Vec<usize> = plan.needs(idx).map(|j| j.index()).collect();
            ns.iter().for_each(|&j| dependents[j].push(idx.index()));
            needs.push(ns);
        }
        let cost = plan.steps().iter().map(cost).collect();
        Ok(Dag {
            needs,
            dependents,
            cost,
        })
    }

    fn work(&self) -> u64 {
        self.cost.iter().sum()
    }

    /// For each step, the longest path from its start to the end of the run.
    fn levels(&self) -> Vec<u64> {
        // Kahn's algorithm from the sinks.
        let mut left: Vec<usize> = self.dependents.iter().map(Vec::len).collect();
        let mut queue: Vec<usize> = (0..left.len()).filter(|&i| left[i] == 0).collect();
        let mut level = vec![0; left.len()];
        while let Some(i) = queue.pop() {
            level[i] = self.cost[i]
                + self.dependents[i]
                    .iter()
                    .map(|&d| level[d])
                    .max()
                    .unwrap_or(0);
            for &j in &self.needs[i] {
                left[j] -= 1;
                if left[j] == 0 {
                    queue.push(j);
                }
            }
        }
        level
    }

    /// No schedule on `jobs` slots is shorter: max(critical path, work / jobs).
    fn bound(&self, jobs: usize) -> u64 {
        let critical = self.levels().into_iter().max().unwrap_or(0);
        critical.max(self.work().div_ceil(jobs as u64))
    }

    /// Whenever a slot is free, start the ready step of highest priority; the makespan.
    fn simulate(&self, jobs: usize, priority: &[u64]) -> u64 {
        let mut waiting: Vec<usize> = self.needs.iter().map(Vec::len).collect();
        let mut ready: BinaryHeap<(u64, Reverse<usize>)> = (0..waiting.len())
            .filter(|&i| waiting[i] == 0)
            .map(|i| (priority[i], Reverse(i)))
            .collect();
        let mut running = BinaryHeap::new();
        let mut now = 0;
        loop {
            while running.len() < jobs {
                let Some((_, Reverse(i))) = ready.pop() else {
                    break;
                };
                running.push(Reverse((now + self.cost[i], i)));
            }
            let Some(Reverse((t, i))) = running.pop() else {
                return now;
            };
            now = t;
            for &d in &self.dependents[i] {
                waiting[d] -= 1;
                if waiting[d] == 0 {
                    ready.push((priority[d], Reverse(d)));
                }
            }
        }
    }
}

/// The fake engine: sleep in-process, or run `sleep S` (`true` for 0) as a child.
struct Fake {
    cost: HashMap<String, u64>,
    spawn: bool,
}

impl StepExecutor for Fake {
    fn execute(&self, step: &Step, io: &StepIo<'_>) -> StepResult {
        let us = self.cost.get(&step.id.to_string()).copied().unwrap_or(0);
        if !self.spawn {
            std::thread::sleep(Duration::from_micros(us));
            return StepResult::ok();
        }
        let argv = match us {
            0 => vec!["true".to_string()],
            _ => vec!["sleep".to_string(), seconds(us)],
        };
        let f = process::spawn(
            &process::Command::new(argv),
            &io.table,
            process::Output::Merged(&mut |_| {}),
        );
        match f.exit.success() {
            true => StepResult::ok(),
            false => StepResult::failed(f.exit.describe(), f.stdout),
        }
    }
}

fn seconds(us: u64) -> String {
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

/// The wall time, and the bound recomputed from the step times the scheduler measured.
fn with_multiarch(plan: &Plan, dag: &Dag, jobs: usize, spawn: bool) -> Result<(Duration, u64)> {
    let cost = plan.steps().iter().zip(&dag.cost);
    let fake = Fake {
        cost: cost.map(|(s, &c)| (s.id.to_string(), c)).collect(),
        spawn,
    };
    let opts = PoolOptions {
        jobs,
        ..PoolOptions::default()
    };
    let t0 = Instant::now();
    let summary = pool::drive(plan, &fake, &opts, ProcessTable::new(), &mut Silent);
    let wall = t0.elapsed();
    let took: HashMap<&str, u64> = (summary.steps.iter().filter(|s| s.status.is_ok()))
        .map(|s| (s.id.as_str(), s.duration.as_micros() as u64))
        .collect();
    if took.len() != plan.steps().len() {
        return Err(format!(
            "only {} of {} steps ran ok",
            took.len(),
            plan.steps().len()
        ));
    }
    let measured = Dag::new(plan, |s| {
        took.get(s.id.to_string().as_str()).copied().unwrap_or(0)
    })?;
    Ok((wall, measured.bound(jobs)))
}

/// One phony target per step, prerequisites = needs, and `all`.
fn write_makefile(path: &Path, dag: &Dag) -> Result<()> {
    let names: Vec<String> = (0..dag.cost.len()).map(|i| format!("s{i}")).collect();
    let mut m = format!(".PHONY: all {0}\nall: {0}\n", names.join(" "));
    for (i, ns) in dag.needs.iter().enumerate() {
        let pre: Vec<&str> = ns.iter().map(|&j| names[j].as_str()).collect();
        let recipe = match dag.cost[i] {
            0 => "true".to_string(),
            us => format!("sleep {}", seconds(us)),
        };
        m.push_str(&format!("{}: {}\n\t@{recipe}\n", names[i], pre.join(" ")));
    }
    std::fs::write(path, m).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn with_make(file: &Path, jobs: usize) -> Result<Duration> {
    let t0 = Instant::now();
    let out = std::process::Command::new("make")
        .args(["-r", "-R", "-s", "-j", &jobs.to_string(), "-f"])
        .arg(file)
        .arg("all")
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL")
        .output()
        .map_err(|e| format!("cannot run make: {e}"))?;
    let wall = t0.elapsed();
    match out.status.success() {
        true => Ok(wall),
        false => Err(format!(
            "make failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

fn median<T: PartialOrd + Copy>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

type Medians = (Duration, f64, Duration, Option<Duration>);

/// Medians of: multiarch's wall, its wall over the measured bound, +spawn, make.
fn measure(
    plan: &Plan,
    dag: &Dag,
    makefile: Option<&Path>,
    jobs: usize,
    rounds: usize,
) -> Result<Medians> {
    let (mut m, mut over, mut s, mut k) = (vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        let (wall, measured) = with_multiarch(plan, dag, jobs, false)?;
        m.push(wall);
        over.push(wall.as_micros() as f64 / measured.max(1) as f64 - 1.0);
        s.push(with_multiarch(plan, dag, jobs, true)?.0);
        if let Some(file) = makefile {
            k.push(with_make(file, jobs)?);
        }
    }
    let make = (!k.is_empty()).then(|| median(k));
    Ok((median(m), median(over), median(s), make))
}

pub fn run(quick: bool) -> Result<()> {
    let dir =
        std::env::temp_dir().join(format!("multiarch-bench-scheduler-{}", std::process::id()));
    let result = match quick {
        true => bench(&dir, 10, &[2], &[2], 1),
        false => bench(&dir, 50, &[1, 2, 4, 8], &[1, 2], 3),
    };
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn bench(
    dir: &Path,
    images: usize,
    jobs: &[usize],
    zero_jobs: &[usize],
    rounds: usize,
) -> Result<()> {
    let plan = make_plan(dir, images)?;
    let dag = Dag::new(&plan, cost_us)?;
    let zero = Dag::new(&plan, |_| 0)?;
    let (timed_mk, zero_mk): (PathBuf, PathBuf) =
        (dir.join("Makefile.timed"), dir.join("Makefile.zero"));
    write_makefile(&timed_mk, &dag)?;
    write_makefile(&zero_mk, &zero)?;
    let n = plan.steps().len();
    let levels = dag.levels();
    let mut kinds: Vec<(StepKind, usize)> = Vec::new();
    for s in plan.steps() {
        match kinds.iter_mut().find(|(k, _)| *k == s.kind()) {
            Some((_, c)) => *c += 1,
            None => kinds.push((s.kind(), 1)),
        }
    }
    let kinds: Vec<String> = kinds
        .iter()
        .map(|(k, c)| format!("{c} {}", k.as_str()))
        .collect();
    println!(
        "{images} images × {} arches, chains of {CHAIN}: {n} steps ({}); work {:.2} s, critical path {:.3} s; median of {rounds}",
        ARCHES.len(),
        kinds.join(", "),
        dag.work() as f64 / 1e6,
        levels.iter().max().copied().unwrap_or(0) as f64 / 1e6,
    );
    let probe = std::process::Command::new("make").arg("--version").output();
    let has_make = probe.is_ok_and(|o| o.status.success());
    if !has_make {
        println!("  (make is not installed: its column is left out)");
    }
    let (timed_mk, zero_mk) = (
        has_make.then_some(timed_mk.as_path()),
        has_make.then_some(zero_mk.as_path()),
    );
    // The scheduler's policy: the longest chain of steps (counted, not timed)
    // first, then plan order. Plan order is topological.
    let mut chain = vec![1u64; n];
    for i in (0..n).rev() {
        chain[i] = 1 + dag.dependents[i]
            .iter()
            .map(|&d| chain[d])
            .max()
            .unwrap_or(0);
    }
    let policy: Vec<u64> = (0..n)
        .map(|i| chain[i] * (n as u64 + 1) + (n - i) as u64)
        .collect();
    let vs = |d: f64, bound: f64| format!("{d:.2} s ({:+.1} %)", (d / bound - 1.0) * 100.0);
    let opt = |d: Option<String>| d.unwrap_or_else(|| "-".into());
    println!("  -j  bound    sim (chain)       sim (lpt)         multiarch         +spawn            make");
    let mut measured = Vec::new();
    for &j in jobs {
        let bound = dag.bound(j) as f64 / 1e6;
        let (m, over, s, k) = measure(&plan, &dag, timed_mk, j, rounds)?;
        println!(
            "  {j:<3} {bound:.2} s   {:<17} {:<17} {:<17} {:<17} {}",
            vs(dag.simulate(j, &policy) as f64 / 1e6, bound),
            vs(dag.simulate(j, &levels) as f64 / 1e6, bound),
            vs(m.as_secs_f64(), bound),
            vs(s.as_secs_f64(), bound),
            opt(k.map(|k| vs(k.as_secs_f64(), bound))),
        );
        measured.push(format!("-j {j} {:+.1} %", over * 100.0));
    }
    println!(
        "  multiarch over the bound from its measured step times: {}",
        measured.join(", ")
    );
    let per_step = |d: Duration| format!("{:.3} ms/step", d.as_secs_f64() * 1e3 / n as f64);
    for &j in zero_jobs {
        let (m, _, s, k) = measure(&plan, &zero, zero_mk, j, rounds)?;
        println!(
            "  zero-length steps, -j {j}: multiarch {}, +spawn {}, make {}",
            per_step(m),
            per_step(s),
            opt(k.map(per_step)),
        );
    }
    Ok(())
}
