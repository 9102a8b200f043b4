//! `cargo xtask bench`: wharf's operations timed side by side with the peer tools, in one
//! run, on the same generated data; prints a Markdown table (wall time, peak RSS).
//!
//! Every command runs under `/usr/bin/time -f '%e %M'` (GNU time: elapsed seconds, max RSS
//! in KiB), ours and the peers' alike. wharf's side is the release build of `bench/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

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
    /// Which benchmarks: `registry` (hashing, packaging, pushing), `audit` (appends and
    /// verification of the audit log), `sign` (sign/attest/verify against the local
    /// registry), `deploy` (plan, apply, rollout on the local control plane beside kubectl),
    /// `scan` (OSV matching; a Python ML image beside Trivy, Grype and osv-scanner) or `all`.
    #[arg(long, default_value = "all", value_parser = ["all", "registry", "audit", "sign", "deploy", "scan"])]
    suite: String,
    /// Records in the log that `audit` verifies.
    #[arg(long, default_value_t = 100_000)]
    verify_records: u64,
}

/// The sample of median time of `n` runs of `run`, with `before` called before each.
pub(crate) fn median_of(
    n: usize,
    before: &dyn Fn(),
    run: impl Fn() -> anyhow::Result<Sample>,
) -> anyhow::Result<Sample> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        before();
        samples.push(run()?);
    }
    samples.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    Ok(samples.swap_remove(n / 2))
}

/// One timed command.
pub(crate) struct Sample {
    pub(crate) what: String,
    pub(crate) tool: String,
    pub(crate) seconds: f64,
    pub(crate) rss_kib: u64,
}

pub(crate) fn timed(
    what: &str,
    tool: &str,
    program: &Path,
    args: &[&str],
) -> anyhow::Result<Sample> {
    timed_with(what, tool, program, args, &[])
}

/// [`timed`], with `env` set for the command.
pub(crate) fn timed_with(
    what: &str,
    tool: &str,
    program: &Path,
    args: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> anyhow::Result<Sample> {
    let (seconds, rss_kib, _) = time_command(program, args, env, &[0])
        .map_err(|e| anyhow::anyhow!("{tool} failed: {e}"))?;
    Ok(Sample {
        what: what.into(),
        tool: tool.into(),
        seconds,
        rss_kib,
    })
}

/// Run `program` under `/usr/bin/time`: its wall seconds, peak RSS in KiB and stdout; an
/// exit code outside `ok` is an error with its stderr.
pub(crate) fn time_command(
    program: &Path,
    args: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
    ok: &[i32],
) -> anyhow::Result<(f64, u64, String)> {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%e %M"])
        .arg(program)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .with_context(|| format!("running {} under /usr/bin/time", program.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.code().is_some_and(|c| ok.contains(&c)) {
        bail!("{} {args:?}: {stderr}", program.display());
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
    Ok((
        seconds,
        rss_kib,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
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
        if self.suite == "audit" || self.suite == "all" {
            crate::bench_audit::run(&ours, &dir.join("audit"), self.verify_records)?;
        }
        if self.suite == "sign" || self.suite == "all" {
            sign_suite(&ours)?;
        }
        if self.suite == "deploy" || self.suite == "all" {
            deploy_suite(&ours)?;
        }
        if self.suite == "scan" || self.suite == "all" {
            // Kept between runs: the image's Python packages come from PyPI once.
            crate::bench_scan::run_suite(&ours, &root.join("target/bench-scan"))?;
        }
        if ["audit", "sign", "deploy", "scan"].contains(&self.suite.as_str()) {
            return Ok(());
        }
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
        // Packaging rows are the median of three runs each (one run varies by a tenth of a
        // second here); staged files and the layout are removed before each run.
        let reset = || {
            let _ = std::fs::remove_dir_all(&staging);
            let _ = std::fs::remove_dir_all(&layout);
            let _ = std::fs::remove_file(&tar_out);
        };
        let tar_args = [
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
        ];
        let tar_sync = format!("/bin/tar {} && sync {tar_out}", tar_args.join(" "));
        let mut samples = vec![
            median_of(3, &reset, || {
                timed(
                    "sha256 of the weights",
                    "openssl dgst -sha256",
                    Path::new("/usr/bin/openssl"),
                    &["dgst", "-sha256", &w],
                )
            })?,
            median_of(3, &reset, || {
                timed(
                    "sha256 of the weights",
                    "sha256sum",
                    Path::new("/usr/bin/sha256sum"),
                    &[&w],
                )
            })?,
            median_of(3, &reset, || {
                timed(
                    "sha256 of the weights",
                    "wharf (Hasher)",
                    &ours,
                    &["sha256", &w],
                )
            })?,
            median_of(3, &reset, || {
                timed(
                    "package the model dir",
                    "GNU tar, reproducible flags",
                    Path::new("/bin/tar"),
                    &tar_args,
                )
            })?,
            // wharf syncs each layer before it can be tagged (durable after a power loss);
            // tar does not, so the same with a sync of its output is shown too.
            median_of(3, &reset, || {
                timed(
                    "package the model dir",
                    "GNU tar, then sync of the tar file",
                    Path::new("/bin/sh"),
                    &["-c", &tar_sync],
                )
            })?,
            median_of(3, &reset, || {
                timed(
                    "package the model dir",
                    "wharf ModelPack (synced)",
                    &ours,
                    &["package", &m, &staging],
                )
            })?,
            median_of(3, &reset, || {
                timed(
                    "package + push to OCI layout",
                    "wharf (synced)",
                    &ours,
                    &["push-layout", &m, &staging, &layout],
                )
            })?,
        ];

        // Push the packaged image (its 1 GiB layer) to the local registry: wharf, skopeo, curl.
        let running = crate::backends::up().context("starting the local registry")?;
        let env = |name: &str| running.var(name);
        let registry = env("WHARF_TEST_REGISTRY").context("the harness started no registry")?;
        let skopeo = env("WHARF_TEST_SKOPEO").context("the harness installed no skopeo")?;
        let url = format!("http://{registry}");
        let image = dir.join("oci/bench/model");
        let image_s = image.to_string_lossy().into_owned();
        let run_id = std::process::id();
        let what = "push the image (1 GiB layer) to a local registry";
        samples.push(timed(
            what,
            "wharf",
            &ours,
            &[
                "push-registry",
                &image_s,
                &url,
                &format!("bench{run_id}/wharf"),
            ],
        )?);
        samples.push(timed(
            what,
            "skopeo copy",
            Path::new(&skopeo),
            &[
                "copy",
                "--dest-tls-verify=false",
                "--preserve-digests",
                &format!("oci:{image_s}:v1"),
                &format!("docker://{registry}/bench{run_id}/skopeo:v1"),
            ],
        )?);
        let (digest_hex, layer_path) = largest_blob(&image)?;
        let location = start_upload(&url, &format!("bench{run_id}/curl"))?;
        let sep = if location.contains('?') { '&' } else { '?' };
        let put_url = format!("{location}{sep}digest=sha256:{digest_hex}");
        samples.push(timed(
            what,
            "curl -T (the layer only, one PUT)",
            Path::new("/usr/bin/curl"),
            &[
                "-s",
                "-f",
                "-o",
                "/dev/null",
                "-H",
                "Content-Type: application/octet-stream",
                "-T",
                &layer_path,
                &put_url,
            ],
        )?);

        // Re-push of an unchanged 5-layer image.
        let small = dir.join("small");
        std::fs::create_dir_all(&small)?;
        for i in 0..5u8 {
            std::fs::write(small.join(format!("shard-{i}.bin")), vec![i; 1 << 20])?;
        }
        let small_root = dir.join("small-oci").to_string_lossy().into_owned();
        let small_s = small.to_string_lossy().into_owned();
        let small_staging = dir.join("small-staging").to_string_lossy().into_owned();
        timed(
            "prepare",
            "wharf",
            &ours,
            &["push-layout", &small_s, &small_staging, &small_root],
        )?;
        let small_image = format!("{small_root}/bench/model");
        let out = Command::new(&ours)
            .args([
                "repush",
                &small_image,
                &url,
                &format!("bench{run_id}/repush"),
            ])
            .output()?;
        if !out.status.success() {
            bail!("repush failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let repush = String::from_utf8_lossy(&out.stdout).trim().to_owned();

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
        let find = |what: &str, tool: &str| {
            samples
                .iter()
                .find(|s| s.what.starts_with(what) && s.tool.starts_with(tool))
                .map(|s| s.seconds)
        };
        if let (Some(ours), Some(openssl)) = (find("sha256", "wharf"), find("sha256", "openssl")) {
            println!(
                "\nsha256: wharf / openssl = {:.2}x (target <= 1.3x)",
                ours / openssl
            );
        }
        if let (Some(ours), Some(tar), Some(tar_sync)) = (
            find("package + push", "wharf"),
            find("package the", "GNU tar, reproducible"),
            find("package the", "GNU tar, then sync"),
        ) {
            println!(
                "package + push to the layout: wharf / tar = {:.2}x (target <= 1.5x); wharf / (tar + sync) = {:.2}x",
                ours / tar,
                ours / tar_sync
            );
        }
        if let (Some(ours), Some(skopeo), Some(curl)) = (
            find("push the", "wharf"),
            find("push the", "skopeo"),
            find("push the", "curl"),
        ) {
            println!(
                "push: wharf / curl = {:.2}x (target <= 1.2x); skopeo / wharf = {:.2}x (target >= 2x)",
                ours / curl,
                skopeo / ours
            );
        }
        println!(
            "re-push of an unchanged 5-layer image: {repush} (target < 200 ms, HEAD requests only)"
        );
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}

/// Sign + attach + verify against the local registry: key file, KMS (moto) and keyless (the
/// local Sigstore), in process; then each step as its own process beside the cosign CLI
/// (built by the harness) on the same registry and key; then keyless signing of a file
/// beside sigstore-python's CLI.
fn sign_suite(ours: &Path) -> anyhow::Result<()> {
    let running = crate::backends::up().context("starting the local registry and moto")?;
    let env = |name: &str| running.var(name);
    let registry = env("WHARF_TEST_REGISTRY").context("the harness started no registry")?;
    let moto = env("WHARF_TEST_MOTO").context("the harness started no moto")?;
    let sigstore = env("WHARF_TEST_SIGSTORE").context("the harness started no local Sigstore")?;
    let python = env("WHARF_TEST_SIGSTORE_PYTHON").context("sigstore-python is not installed")?;
    let cosign = env("WHARF_TEST_COSIGN").context("cosign is not installed")?;
    println!("\nsign + attach + verify, one small image per round, 20 rounds, local registry:\n");
    let out = Command::new(ours)
        .args([
            "sign-verify",
            &format!("http://{registry}"),
            &format!("bench-sign-{}", std::process::id()),
            "20",
            &moto,
            &sigstore,
        ])
        .output()?;
    if !out.status.success() {
        bail!(
            "sign-verify failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    print!("{}", String::from_utf8_lossy(&out.stdout));
    cosign_side_by_side(ours, &registry, &sigstore, Path::new(&cosign))?;
    keyless_artifact_side_by_side(ours, &sigstore, &python)
}

/// Each step as a CI job runs it, one process per step, wharf beside cosign 2 on the same
/// registry with the same `cosign.key` (made by `cosign generate-key-pair`, read by both):
/// sign + attach, verify, attest + attach, verify the attestation; and keyless sign and
/// verify against the local Sigstore (cosign with `--trusted-root`, so neither tries the
/// network). Median wall time and peak RSS of `ROUNDS` rounds, each on fresh images.
fn cosign_side_by_side(
    ours: &Path,
    registry: &str,
    sigstore: &str,
    cosign: &Path,
) -> anyhow::Result<()> {
    const ROUNDS: usize = 10;
    const PASSWORD: &str = "wharf-bench-password";
    let dir = std::env::temp_dir().join(format!("wharf-bench-cosign-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let key = dir.join("cosign.key");
    let out = Command::new(cosign)
        .arg("generate-key-pair")
        .current_dir(&dir)
        .env("COSIGN_PASSWORD", PASSWORD)
        .output()?;
    if !out.status.success() {
        bail!(
            "cosign generate-key-pair: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let root = dir.join("trusted_root.json");
    std::fs::write(
        &root,
        http_get_body(&format!("{sigstore}/trusted_root.json"))?,
    )?;
    let predicate = dir.join("evaluation.json");
    std::fs::write(&predicate, r#"{"metrics":{"accuracy":0.9}}"#)?;
    let token = String::from_utf8(Command::new(ours).arg("keyless-token").output()?.stdout)?;
    let [token, subject, issuer] = token.split_whitespace().collect::<Vec<_>>()[..] else {
        bail!("keyless-token printed {token:?}");
    };
    let url = format!("http://{registry}");
    let repo = format!("bench-cosign-{}", std::process::id());
    let images = |n: usize| -> anyhow::Result<Vec<String>> {
        let out = Command::new(ours)
            .args(["push-small", &url, &repo, &n.to_string()])
            .output()?;
        if !out.status.success() {
            bail!("push-small: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8(out.stdout)?
            .lines()
            .map(str::to_owned)
            .collect())
    };
    let k = key.to_string_lossy().into_owned();
    let public = dir.join("cosign.pub").to_string_lossy().into_owned();
    let r = root.to_string_lossy().into_owned();
    let p = predicate.to_string_lossy().into_owned();
    let keyless = format!("keyless:{sigstore}");
    let mut rows: Vec<(&str, Vec<Sample>, Vec<Sample>)> = Vec::new();
    let mut add = |op: &'static str, wharf: Sample, peer: Sample| match rows
        .iter_mut()
        .find(|(o, _, _)| *o == op)
    {
        Some((_, w, c)) => {
            w.push(wharf);
            c.push(peer);
        }
        None => rows.push((op, vec![wharf], vec![peer])),
    };
    // The key's password for both tools, cosign's prompts answered, HOME and TUF_ROOT in
    // the scratch dir: nothing outside it is read or written.
    let tuf = dir.join("tuf");
    let env: [(&str, &std::ffi::OsStr); 4] = [
        ("COSIGN_PASSWORD", PASSWORD.as_ref()),
        ("COSIGN_YES", "true".as_ref()),
        ("HOME", dir.as_os_str()),
        ("TUF_ROOT", tuf.as_os_str()),
    ];
    let env_timed =
        |tool: &str, program: &Path, args: &[&str]| timed_with(args[0], tool, program, args, &env);
    for _ in 0..ROUNDS {
        let fresh = images(4)?;
        let [ours_img, theirs_img, ours_kl, theirs_kl] = &fresh[..] else {
            bail!("push-small printed {} images, not 4", fresh.len());
        };
        let at = |d: &str| format!("{registry}/{repo}@{d}");
        let steps: [(&'static str, &str, &str, Vec<String>); 4] = [
            (
                "sign + attach (.sig)",
                "sign",
                ours_img,
                vec![
                    "sign".into(),
                    "--key".into(),
                    k.clone(),
                    "--tlog-upload=false".into(),
                    "--allow-http-registry".into(),
                    at(theirs_img),
                ],
            ),
            (
                "verify signature",
                "verify",
                ours_img,
                vec![
                    "verify".into(),
                    "--key".into(),
                    public.clone(),
                    "--insecure-ignore-tlog=true".into(),
                    "--trusted-root".into(),
                    r.clone(),
                    "--allow-http-registry".into(),
                    at(theirs_img),
                ],
            ),
            (
                "attest + attach (.att)",
                "attest",
                ours_img,
                vec![
                    "attest".into(),
                    "--key".into(),
                    k.clone(),
                    "--type".into(),
                    "https://wharf.dev/attestation/model-evaluation/v1".into(),
                    "--predicate".into(),
                    p.clone(),
                    "--tlog-upload=false".into(),
                    "--allow-http-registry".into(),
                    at(theirs_img),
                ],
            ),
            (
                "verify attestation",
                "verify-attestation",
                ours_img,
                vec![
                    "verify-attestation".into(),
                    "--key".into(),
                    public.clone(),
                    "--type".into(),
                    "https://wharf.dev/attestation/model-evaluation/v1".into(),
                    "--insecure-ignore-tlog=true".into(),
                    "--trusted-root".into(),
                    r.clone(),
                    "--allow-http-registry".into(),
                    at(theirs_img),
                ],
            ),
        ];
        for (label, op, image, cosign_args) in &steps {
            let wharf = env_timed("wharf", ours, &["step", op, &url, &repo, image, &k])?;
            let args: Vec<&str> = cosign_args.iter().map(String::as_str).collect();
            let peer = env_timed("cosign", cosign, &args)?;
            add(label, wharf, peer);
        }
        let keyless_steps: [(&'static str, &str, Vec<String>); 2] = [
            (
                "keyless sign + Rekor + attach (.sig)",
                "sign",
                vec![
                    "sign".into(),
                    "--fulcio-url".into(),
                    sigstore.into(),
                    "--rekor-url".into(),
                    sigstore.into(),
                    "--identity-token".into(),
                    token.into(),
                    "--trusted-root".into(),
                    r.clone(),
                    "--allow-http-registry".into(),
                    at(theirs_kl),
                ],
            ),
            (
                "keyless verify (.sig: chain, SCT, SET, identity)",
                "verify",
                vec![
                    "verify".into(),
                    "--certificate-identity".into(),
                    subject.into(),
                    "--certificate-oidc-issuer".into(),
                    issuer.into(),
                    "--trusted-root".into(),
                    r.clone(),
                    "--allow-http-registry".into(),
                    at(theirs_kl),
                ],
            ),
        ];
        for (label, op, cosign_args) in &keyless_steps {
            let wharf = env_timed("wharf", ours, &["step", op, &url, &repo, ours_kl, &keyless])?;
            let args: Vec<&str> = cosign_args.iter().map(String::as_str).collect();
            let peer = env_timed("cosign", cosign, &args)?;
            add(label, wharf, peer);
        }
    }
    let version = Command::new(cosign).arg("version").output()?;
    let version = String::from_utf8_lossy(&version.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&version.stderr).lines())
        .find_map(|l| l.strip_prefix("GitVersion:").map(|v| v.trim().to_owned()))
        .unwrap_or_else(|| "?".into());
    println!(
        "
one process per step (as a CI job runs them), wharf-bench beside cosign {version}, same registry and key, median of {ROUNDS}:
"
    );
    println!("| step | wharf | cosign | wharf peak RSS | cosign peak RSS |");
    println!("|---|---|---|---|---|");
    let median = |v: &mut Vec<Sample>| {
        v.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
        let m = &v[v.len() / 2];
        (m.seconds * 1000.0, m.rss_kib / 1024)
    };
    for (op, w, c) in &mut rows {
        let ((wt, wr), (ct, cr)) = (median(w), median(c));
        println!("| {op} | {wt:.0} ms | {ct:.0} ms | {wr} MiB | {cr} MiB |");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Keyless signing and verification of one 1 MiB file with the local Sigstore, 10 rounds:
/// wharf (in process) beside sigstore-python's CLI (each round a process; its interpreter
/// start-up, `sigstore --version`, is measured on its own).
fn keyless_artifact_side_by_side(ours: &Path, sigstore: &str, python: &str) -> anyhow::Result<()> {
    const ROUNDS: usize = 10;
    let dir = std::env::temp_dir().join(format!("wharf-bench-keyless-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("model.bin");
    std::fs::write(&file, vec![7u8; 1 << 20])?;
    let file_s = file.to_string_lossy().into_owned();
    let out = Command::new(ours)
        .args(["keyless-artifact", sigstore, &file_s, &ROUNDS.to_string()])
        .output()?;
    if !out.status.success() {
        bail!(
            "keyless-artifact failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let ours_ms = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let (ours_sign, ours_verify) = ours_ms.split_once(' ').context("keyless-artifact output")?;

    let config = dir.join("client_trust_config.json");
    let fetched = http_get_body(&format!("{sigstore}/client_trust_config.json"))?;
    std::fs::write(&config, fetched)?;
    // The token, subject and issuer the local Fulcio will certify.
    let out = Command::new(ours).arg("keyless-token").output()?;
    let who = String::from_utf8_lossy(&out.stdout).into_owned();
    let [token, subject, issuer] = who.split_whitespace().collect::<Vec<_>>()[..] else {
        bail!("keyless-token printed {who:?}");
    };
    let time_it = |args: &[&str]| -> anyhow::Result<f64> {
        let start = Instant::now();
        let out = Command::new(python).args(args).output()?;
        if !out.status.success() {
            bail!(
                "sigstore {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(start.elapsed().as_secs_f64() * 1000.0)
    };
    let cfg = config.to_string_lossy().into_owned();
    let bundle = format!("{file_s}.sigstore.json");
    let (mut sign, mut verify, mut startup) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        startup.push(time_it(&["--version"])?);
        sign.push(time_it(&[
            "--trust-config",
            &cfg,
            "sign",
            "--identity-token",
            token,
            "--overwrite",
            &file_s,
        ])?);
        verify.push(time_it(&[
            "--trust-config",
            &cfg,
            "verify",
            "identity",
            "--offline",
            "--bundle",
            &bundle,
            "--cert-identity",
            subject,
            "--cert-oidc-issuer",
            issuer,
            &file_s,
        ])?);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (sign, verify, startup) = (median(&mut sign), median(&mut verify), median(&mut startup));
    println!("\nkeyless, one 1 MiB file, local Fulcio + Rekor, median of {ROUNDS}:\n");
    println!(
        "| operation | wharf (in process) | sigstore-python CLI | sigstore-python minus start-up ({startup:.0} ms) |"
    );
    println!("|---|---|---|---|");
    println!(
        "| sign (certificate + Rekor + bundle file) | {ours_sign} ms | {sign:.1} ms | {:.1} ms |",
        sign - startup
    );
    println!(
        "| verify offline (bundle file, identity) | {ours_verify} ms | {verify:.1} ms | {:.1} ms |",
        verify - startup
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// GET a URL with curl; its body.
fn http_get_body(url: &str) -> anyhow::Result<Vec<u8>> {
    let out = Command::new("/usr/bin/curl").args(["-sf", url]).output()?;
    if !out.status.success() {
        bail!("GET {url} failed");
    }
    Ok(out.stdout)
}

/// The largest blob of a layout directory: `(hex, path)`.
fn largest_blob(layout: &Path) -> anyhow::Result<(String, String)> {
    let dir = layout.join("blobs/sha256");
    let mut best: Option<(u64, String, PathBuf)> = None;
    for e in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
        let e = e?;
        let len = e.metadata()?.len();
        if best.as_ref().is_none_or(|(l, _, _)| len > *l) {
            best = Some((len, e.file_name().to_string_lossy().into_owned(), e.path()));
        }
    }
    let (_, hex, path) = best.context("empty layout")?;
    Ok((hex, path.to_string_lossy().into_owned()))
}

/// Start a blob upload with curl and return the absolute Location.
fn start_upload(url: &str, repo: &str) -> anyhow::Result<String> {
    let out = Command::new("/usr/bin/curl")
        .args([
            "-s",
            "-i",
            "-X",
            "POST",
            &format!("{url}/v2/{repo}/blobs/uploads/"),
        ])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let location = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("Location: ")
                .or_else(|| l.strip_prefix("location: "))
        })
        .context("the registry gave no upload Location")?
        .trim()
        .to_owned();
    Ok(if location.starts_with("http") {
        location
    } else {
        format!("{url}{location}")
    })
}

/// One Deployment (2 replicas) to the harness's control plane, a new image each round, as a
/// CI job does it: wharf (plan + apply + rollout in one process) beside kubectl (`diff
/// --server-side`, `apply --server-side`, `rollout status`, one process each) on the same
/// objects in namespaces of their own. Median of `ROUNDS` rounds per step.
fn deploy_suite(ours: &Path) -> anyhow::Result<()> {
    const ROUNDS: usize = 7;
    let running = crate::backends::up().context("starting the local control plane")?;
    let env = |name: &str| {
        running
            .var(name)
            .with_context(|| format!("the harness set no {name}"))
    };
    let kubeconfig = env("WHARF_TEST_KUBECONFIG")?;
    let kubectl = PathBuf::from(env("WHARF_TEST_KUBECTL")?);
    let pid = std::process::id();
    let (ns_wharf, ns_kubectl) = (format!("bench-wharf-{pid}"), format!("bench-kubectl-{pid}"));
    let kube = |args: &[&str]| -> anyhow::Result<std::process::Output> {
        Ok(Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .output()?)
    };
    for ns in [&ns_wharf, &ns_kubectl] {
        let out = kube(&["create", "namespace", ns])?;
        if !out.status.success() {
            bail!(
                "kubectl create namespace: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let dir = std::env::temp_dir().join(format!("wharf-bench-deploy-{pid}"));
    std::fs::create_dir_all(&dir)?;
    // (plan, apply, rollout, total) in ms and peak RSS in KiB, per round.
    let mut wharf: Vec<[f64; 4]> = Vec::new();
    let mut peer: Vec<[f64; 4]> = Vec::new();
    let (mut wharf_rss, mut peer_rss) = (0u64, 0u64);
    let time = |program: &Path, args: &[&str], ok: &[i32]| {
        time_command(program, args, &[], ok).map(|(secs, rss, out)| (secs * 1000.0, rss, out))
    };
    let k = |args: &[&str]| -> Vec<String> {
        let mut v = vec!["--kubeconfig".to_owned(), kubeconfig.clone()];
        v.extend(args.iter().map(|s| (*s).to_owned()));
        v
    };
    for round in 0..ROUNDS {
        let content = format!("bench-model-{round}");
        let (total, rss, out) = time(ours, &["deploy", &kubeconfig, &ns_wharf, &content], &[0])?;
        let steps: Vec<f64> = out
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        let [plan, apply, rollout] = steps[..] else {
            bail!("wharf-bench deploy printed {out:?}");
        };
        wharf.push([plan, apply, rollout, total]);
        wharf_rss = wharf_rss.max(rss);

        let file = dir.join(format!("round-{round}.yaml"));
        let rendered = Command::new(ours)
            .args(["render", &ns_kubectl, &content])
            .arg(&file)
            .output()?;
        if !rendered.status.success() {
            bail!(
                "wharf-bench render: {}",
                String::from_utf8_lossy(&rendered.stderr)
            );
        }
        let f = file.to_string_lossy().into_owned();
        let run = |args: Vec<String>, ok: &[i32]| {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            time(&kubectl, &refs, ok)
        };
        // kubectl diff exits 1 when there are differences (every round but a first create).
        let (plan, r1, _) = run(
            k(&["diff", "--server-side", "--field-manager=wharf", "-f", &f]),
            &[0, 1],
        )?;
        let (apply, r2, _) = run(
            k(&["apply", "--server-side", "--field-manager=wharf", "-f", &f]),
            &[0],
        )?;
        let (rollout, r3, _) = run(
            k(&[
                "-n",
                &ns_kubectl,
                "rollout",
                "status",
                "deployment/bench",
                "--timeout=120s",
            ]),
            &[0],
        )?;
        peer.push([plan, apply, rollout, plan + apply + rollout]);
        peer_rss = peer_rss.max(r1).max(r2).max(r3);
    }
    let median = |rows: &[[f64; 4]], i: usize| {
        let mut v: Vec<f64> = rows.iter().map(|r| r[i]).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "\ndeploy one Deployment (2 replicas, new image each round) to the local control plane, median of {ROUNDS} rounds:\n"
    );
    println!("| step | wharf (one process) | kubectl (one process per step) |");
    println!("|---|---|---|");
    for (i, step) in [
        "plan (server-side dry run / `kubectl diff --server-side`)",
        "apply (server-side apply)",
        "rollout to healthy (watch / `kubectl rollout status`)",
        "whole step, wall time with process start",
    ]
    .iter()
    .enumerate()
    {
        println!(
            "| {step} | {:.0} ms | {:.0} ms |",
            median(&wharf, i),
            median(&peer, i)
        );
    }
    println!(
        "| peak RSS | {} MiB | {} MiB |",
        wharf_rss / 1024,
        peer_rss / 1024
    );
    for ns in [&ns_wharf, &ns_kubectl] {
        let _ = kube(&["delete", "namespace", ns, "--wait=false"]);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
