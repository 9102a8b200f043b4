//! `cargo xtask bench`: wharf's operations timed side by side with the peer tools, in one
//! run, on the same generated data; prints a Markdown table (wall time, peak RSS).
//!
//! Every command runs under `/usr/bin/time -f '%e %M'` (GNU time: elapsed seconds, max RSS
//! in KiB), ours and the peers' alike. wharf's side is the release build of `bench/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

/// Benchmark against peer tools.
#[derive(clap::Args, Debug)]
pub(crate) struct BenchCmd {
    /// Size of the generated data in MiB (1024 for the numbers in the READMEs).
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Where to put the generated data (default: target/bench).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// One timed command.
struct Sample {
    what: String,
    tool: String,
    seconds: f64,
    rss_kib: u64,
}

fn timed(what: &str, tool: &str, program: &Path, args: &[&str]) -> anyhow::Result<Sample> {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%e %M"])
        .arg(program)
        .args(args)
        .output()
        .with_context(|| format!("running {} under /usr/bin/time", program.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("{tool} failed: {stderr}");
    }
    let last = stderr.lines().last().unwrap_or_default();
    let mut parts = last.split_whitespace();
    let seconds = parts
        .next()
        .and_then(|s| s.parse().ok())
        .context("no elapsed time from /usr/bin/time")?;
    let rss_kib = parts
        .next()
        .and_then(|s| s.parse().ok())
        .context("no max RSS from /usr/bin/time")?;
    Ok(Sample {
        what: what.into(),
        tool: tool.into(),
        seconds,
        rss_kib,
    })
}

impl BenchCmd {
    pub(crate) fn run(&self) -> anyhow::Result<()> {
        let sh = Shell::new()?;
        let root = crate::project_root();
        sh.change_dir(&root);
        eprintln!("building wharf-bench (release)…");
        cmd!(sh, "cargo build --release --locked -p wharf-bench").run()?;
        let ours = root.join("target/release/wharf-bench");
        let dir = self
            .dir
            .clone()
            .unwrap_or_else(|| root.join("target/bench"));
        let _ = std::fs::remove_dir_all(&dir);
        let model = dir.join("model");
        std::fs::create_dir_all(&model)?;
        let weights = model.join("weights.safetensors");
        eprintln!("generating {} MiB of random weights…", self.size_mib);
        let count = self.size_mib.to_string();
        let of = format!("of={}", weights.display());
        cmd!(
            sh,
            "dd if=/dev/urandom {of} bs=1M count={count} status=none"
        )
        .run()?;
        std::fs::write(model.join("config.json"), "{\"layers\": 4}\n")?;
        // Warm the page cache so every tool reads from memory alike.
        cmd!(sh, "cat {weights}").ignore_stdout().quiet().run()?;

        let w = weights.to_string_lossy().into_owned();
        let m = model.to_string_lossy().into_owned();
        let staging = dir.join("staging").to_string_lossy().into_owned();
        let layout = dir.join("oci").to_string_lossy().into_owned();
        let tar_out = dir.join("peer.tar").to_string_lossy().into_owned();
        let mut samples = vec![
            timed(
                "sha256 of the weights",
                "openssl dgst -sha256",
                Path::new("/usr/bin/openssl"),
                &["dgst", "-sha256", &w],
            )?,
            timed(
                "sha256 of the weights",
                "sha256sum",
                Path::new("/usr/bin/sha256sum"),
                &[&w],
            )?,
            timed(
                "sha256 of the weights",
                "wharf (Hasher)",
                &ours,
                &["sha256", &w],
            )?,
            timed(
                "package the model dir",
                "GNU tar, reproducible flags",
                Path::new("/bin/tar"),
                &[
                    "--sort=name",
                    "--mtime=@0",
                    "--owner=0",
                    "--group=0",
                    "--numeric-owner",
                    "-cf",
                    &tar_out,
                    "-C",
                    &m,
                    ".",
                ],
            )?,
            timed(
                "package the model dir",
                "wharf ModelPack",
                &ours,
                &["package", &m, &staging],
            )?,
        ];
        let _ = std::fs::remove_dir_all(&staging);
        samples.push(timed(
            "package + push to OCI layout",
            "wharf",
            &ours,
            &["push-layout", &m, &staging, &layout],
        )?);

        println!(
            "\n{} MiB, {} cores, page cache warm\n",
            self.size_mib,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!("| operation | tool | wall time | peak RSS |");
        println!("|---|---|---|---|");
        for s in &samples {
            println!(
                "| {} | {} | {:.2} s | {:.1} MiB |",
                s.what,
                s.tool,
                s.seconds,
                s.rss_kib as f64 / 1024.0
            );
        }
        let find = |tool: &str| samples.iter().find(|s| s.tool == tool).map(|s| s.seconds);
        if let (Some(ours), Some(openssl)) = (find("wharf (Hasher)"), find("openssl dgst -sha256"))
        {
            println!(
                "\nsha256: wharf / openssl = {:.2}x (target <= 1.3x)",
                ours / openssl
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
