//! `cargo xtask outside`: build and run the small projects under `tests/outside/`, each a
//! user's project outside the workspace that depends on wharf's crates by path with the
//! features its README names, and hold each to a budget of crates compiled (what depending
//! on one crate costs). Part of `cargo xtask ci`.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

/// One outside project: its directory, the arguments it runs with, its budget.
struct Project {
    name: &'static str,
    /// Most crates (packages) its build may compile, its own included.
    max_crates: usize,
    /// Crates that must not be in its build (an HTTP client in a layout-only use).
    forbidden: &'static [&'static str],
}

/// The budgets are the measured counts (ARCHITECTURE.md, "What a use costs") plus a little
/// room; a change that pulls in more fails CI and says which crates came in.
const PROJECTS: &[Project] = &[
    Project {
        name: "audit-only",
        max_crates: 60,
        forbidden: &[
            "reqwest",
            "hyper",
            "aws-smithy-runtime",
            "regorus",
            "tokio-util",
        ],
    },
    Project {
        name: "sign-layout",
        max_crates: 80,
        forbidden: &["reqwest", "hyper", "aws-smithy-runtime", "regorus"],
    },
    Project {
        name: "custom-pipeline",
        max_crates: 130,
        forbidden: &["reqwest", "hyper", "aws-smithy-runtime"],
    },
];

/// Build and run the outside projects.
#[derive(clap::Args, Debug)]
pub(crate) struct OutsideCmd {
    /// Build each in a fresh target directory of its own and report the cold build time.
    #[arg(long)]
    cold: bool,
}

impl OutsideCmd {
    pub(crate) fn run(&self) -> anyhow::Result<()> {
        let sh = Shell::new()?;
        run_all(&sh, self.cold)
    }
}

/// Build, count and run every outside project; fails on a build error, a failed run or a
/// budget exceeded.
pub(crate) fn run_all(sh: &Shell, cold: bool) -> anyhow::Result<()> {
    let root = crate::project_root();
    let scratch = root.join("target/outside");
    std::fs::create_dir_all(&scratch)?;
    let mut rows = Vec::new();
    for project in PROJECTS {
        let dir = root.join("tests/outside").join(project.name);
        // The workspace's lock file: the same versions as the workspace, nothing newer
        // fetched; cargo drops what the project does not use.
        std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock"))
            .context("copying Cargo.lock into the outside project")?;
        let target = if cold {
            let t = scratch.join(format!("cold-{}", project.name));
            let _ = std::fs::remove_dir_all(&t);
            t
        } else {
            scratch.join("shared")
        };
        let _cd = sh.push_dir(&dir);
        let _target = sh.push_env("CARGO_TARGET_DIR", &target);
        let crates = crates_in_build(sh)?;
        let started = Instant::now();
        cmd!(sh, "cargo build --quiet")
            .run()
            .with_context(|| format!("building tests/outside/{} failed", project.name))?;
        let secs = started.elapsed().as_secs_f64();
        let work = scratch.join(format!("run-{}", project.name));
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work)?;
        let binary = target
            .join("debug")
            .join(format!("outside-{}", project.name));
        let args = run_args(project.name, &root, &work);
        let out = cmd!(sh, "{binary} {args...}")
            .read()
            .with_context(|| format!("running tests/outside/{} failed", project.name))?;
        println!("{out}");
        let forbidden: Vec<&str> = project
            .forbidden
            .iter()
            .copied()
            .filter(|f| crates.iter().any(|c| c == f))
            .collect();
        if !forbidden.is_empty() {
            bail!(
                "tests/outside/{} builds {}, which that use must not need",
                project.name,
                forbidden.join(", ")
            );
        }
        if crates.len() > project.max_crates {
            bail!(
                "tests/outside/{} compiles {} crates, over its budget of {}: see `cargo tree` in that directory for what came in",
                project.name,
                crates.len(),
                project.max_crates
            );
        }
        rows.push((project.name, crates.len(), project.max_crates, secs));
    }
    println!(
        "\n| outside project | crates compiled | budget | build time ({}) |",
        if cold { "cold" } else { "incremental" }
    );
    println!("|---|---|---|---|");
    for (name, crates, max, secs) in rows {
        println!("| {name} | {crates} | {max} | {secs:.1} s |");
    }
    Ok(())
}

fn run_args(name: &str, root: &Path, work: &Path) -> Vec<String> {
    let work = work.display().to_string();
    match name {
        "custom-pipeline" => vec![root.join("examples/wharf.toml").display().to_string(), work],
        _ => vec![work],
    }
}

/// The packages `cargo build` compiles for the project in the current directory (normal
/// and build dependencies, the project itself included), by name.
fn crates_in_build(sh: &Shell) -> anyhow::Result<Vec<String>> {
    let tree = cmd!(sh, "cargo tree --quiet --prefix none -e normal,build")
        .read()
        .context("cargo tree")?;
    let mut names: Vec<String> = tree
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let name = parts.next()?;
            let version = parts.next()?;
            Some(format!("{name} {version}"))
        })
        .collect();
    names.sort();
    names.dedup();
    Ok(names
        .into_iter()
        .filter_map(|n| n.split(' ').next().map(str::to_owned))
        .collect())
}
