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
        // 87 since Ed25519ph verification (ed25519-dalek and curve25519-dalek: 9 crates).
        max_crates: 92,
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
    readmes_compile_as_written(sh, &root, &scratch.join("shared"))?;
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

/// Each crate's README opens with a `toml` block of `[dependencies]` lines and a `rust`
/// block with a `main`: copied into a new project as they stand (wharf's crates by path
/// instead of by version), it builds and runs. Hidden doctest lines (`# …`) are not
/// allowed there: a reader cannot see them.
fn readmes_compile_as_written(sh: &Shell, root: &Path, target: &Path) -> anyhow::Result<()> {
    let scratch = root.join("target/outside/readmes");
    for entry in std::fs::read_dir(root.join("crates"))? {
        let dir = entry?.path();
        let Some(name) = dir.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        let readme = std::fs::read_to_string(dir.join("README.md"))
            .with_context(|| format!("crates/{name}/README.md"))?;
        let (toml, rust) = first_blocks(&readme).with_context(|| {
            format!("crates/{name}/README.md must open with a ```toml [dependencies] block and a ```rust example")
        })?;
        if rust
            .lines()
            .any(|l| l.trim_start().starts_with("# ") || l.trim() == "#")
        {
            bail!(
                "crates/{name}/README.md: the first example hides lines (`# …`); show what a reader must write"
            );
        }
        let deps = dependencies_by_path(&toml, root)
            .with_context(|| format!("crates/{name}/README.md: the toml block"))?;
        let project = scratch.join(&name);
        let _ = std::fs::remove_dir_all(&project);
        std::fs::create_dir_all(project.join("src"))?;
        std::fs::write(
            project.join("Cargo.toml"),
            format!(
                "[package]\nname = \"readme-{name}\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n{deps}\n[workspace]\n"
            ),
        )?;
        std::fs::write(project.join("src/main.rs"), rust)?;
        std::fs::copy(root.join("Cargo.lock"), project.join("Cargo.lock"))?;
        let _cd = sh.push_dir(&project);
        let _target = sh.push_env("CARGO_TARGET_DIR", target);
        cmd!(sh, "cargo run --quiet")
            .run()
            .with_context(|| format!("the example of crates/{name}/README.md, copied into a new project, does not build or run"))?;
        println!("README of {name}: builds and runs as written");
    }
    Ok(())
}

/// The first ```toml block and the first ```rust block after it.
fn first_blocks(readme: &str) -> Option<(String, String)> {
    let block = |text: &str, lang: &str| -> Option<(String, usize)> {
        let open = format!("```{lang}\n");
        let start = text.find(&open)? + open.len();
        let len = text[start..].find("```")?;
        Some((text[start..start + len].to_owned(), start + len))
    };
    let (toml, end) = block(readme, "toml")?;
    let (rust, _) = block(&readme[end..], "rust")?;
    Some((toml, rust))
}

/// The `[dependencies]` lines of a README, wharf's crates pointed at this checkout.
fn dependencies_by_path(toml: &str, root: &Path) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut in_dependencies = false;
    for line in toml.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            in_dependencies = trimmed == "[dependencies]";
            if in_dependencies {
                out.push_str("[dependencies]\n");
            }
            continue;
        }
        if !in_dependencies || trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let line = line.split(" #").next().unwrap_or(line).trim_end();
        let Some((dep, spec)) = line.split_once('=') else {
            bail!("not a dependency line: {line}");
        };
        let dep = dep.trim();
        if let Some(krate) = dep.strip_prefix("wharf-") {
            let path = root.join("crates").join(format!("wharf-{krate}"));
            let path = format!("path = {:?}", path.display().to_string());
            let spec = spec.trim();
            let spec = if spec.starts_with('"') {
                format!("{{ {path} }}")
            } else {
                spec.replace("version = \"0.1\"", &path)
            };
            out.push_str(&format!("{dep} = {spec}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !out.contains('=') {
        bail!("no [dependencies] lines");
    }
    Ok(out)
}
