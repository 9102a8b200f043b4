//! `cargo xtask bench --suite scan`: the OSV matcher on a reproducible 50,000-advisory
//! database and 2,000-package inventory; then a whole scan of a runnable ML image (this
//! machine's Debian 12 package database and Python, with numpy, scipy, pandas and
//! scikit-learn installed from PyPI) by wharf, Trivy, Grype and osv-scanner, side by side.
//!
//! Each peer gets a database of its own format (Trivy's and Grype's written by their own
//! DB code from the same planted advisories; osv-scanner the same OSV zips as wharf), so
//! the times compare image analysis and matching, not downloads. Trivy runs with
//! `--cache-backend memory`: no layer cache carried from one run to the next.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::bench::{Sample, median_of, timed_with};

/// What the ML image installs: numpy-class packages, pinned.
const PYTHON_PACKAGES: &[&str] = &[
    "numpy==1.26.4",
    "scipy==1.11.4",
    "pandas==2.1.4",
    "scikit-learn==1.3.2",
    "joblib==1.3.2",
    "threadpoolctl==3.2.0",
    "python-dateutil==2.8.2",
    "pytz==2023.3",
    "tzdata==2023.3",
    "six==1.16.0",
    "requests==2.28.0",
    "urllib3==1.26.18",
    "idna==3.6",
    "certifi==2023.11.17",
    "charset-normalizer==3.3.2",
];

fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn sha256_hex(path: &Path, gunzip: bool) -> anyhow::Result<String> {
    let script = if gunzip {
        format!("gzip -dc '{}' | sha256sum", path.display())
    } else {
        format!("sha256sum '{}'", path.display())
    };
    let out = run(Command::new("sh").args(["-c", &script]))?;
    Ok(out
        .split_whitespace()
        .next()
        .context("sha256sum")?
        .to_owned())
}

/// An OCI layout at `layout` with one image of two gzip layers: `base` (a directory tree)
/// and `app` (another); tagged `test`.
fn build_layout(layout: &Path, trees: &[&Path]) -> anyhow::Result<()> {
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for tree in trees {
        let tmp = layout.join("layer.tar.gz");
        run(Command::new("tar")
            .args([
                "--sort=name",
                "--mtime=@0",
                "--owner=0",
                "--group=0",
                "-czf",
            ])
            .arg(&tmp)
            .arg("-C")
            .arg(tree)
            .arg("."))?;
        let hex = sha256_hex(&tmp, false)?;
        diff_ids.push(format!("sha256:{}", sha256_hex(&tmp, true)?));
        let size = std::fs::metadata(&tmp)?.len();
        std::fs::rename(&tmp, blobs.join(&hex))?;
        layers.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": format!("sha256:{hex}"), "size": size}));
    }
    let put = |bytes: &[u8]| -> anyhow::Result<(String, usize)> {
        let d = wharf_core::Digest::sha256_of(bytes);
        std::fs::write(blobs.join(d.hex()), bytes)?;
        Ok((d.to_string(), bytes.len()))
    };
    let config = serde_json::to_vec(&serde_json::json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids}, "config": {"Cmd": ["python3"]}}))?;
    let (cd, cs) = put(&config)?;
    let manifest = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": layers}))?;
    let (md, ms) = put(&manifest)?;
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
            "annotations": {"org.opencontainers.image.ref.name": "test"}}]}))?,
    )?;
    Ok(())
}

/// The image's trees: this machine's dpkg database and os-release (Debian 12), its Python
/// standard library, and the pinned packages installed with pip.
fn image_trees(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let base = dir.join("base");
    let app = dir.join("app");
    let done = dir.join("image-trees.done");
    if done.is_file() {
        return Ok((base, app));
    }
    let _ = std::fs::remove_dir_all(&base);
    let _ = std::fs::remove_dir_all(&app);
    for (from, to) in [
        ("/etc/os-release", "etc/os-release"),
        ("/etc/debian_version", "etc/debian_version"),
        ("/var/lib/dpkg/status", "var/lib/dpkg/status"),
    ] {
        let dest = base.join(to);
        std::fs::create_dir_all(dest.parent().context("parent")?)?;
        std::fs::copy(from, &dest).with_context(|| format!("copying {from}"))?;
    }
    let stdlib = run(Command::new("python3").args([
        "-c",
        "import sysconfig; print(sysconfig.get_paths()['stdlib'])",
    ]))?;
    let stdlib = stdlib.trim();
    let dest = base.join("usr/lib/python3.11");
    std::fs::create_dir_all(&dest)?;
    run(Command::new("cp").args(["-a", &format!("{stdlib}/."), &dest.display().to_string()]))?;
    let site = app.join("usr/local/lib/python3.11/site-packages");
    eprintln!("installing the image's Python packages from PyPI (once)…");
    run(Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-compile",
            "--target",
        ])
        .arg(&site)
        .args(PYTHON_PACKAGES))?;
    std::fs::write(&done, b"")?;
    Ok((base, app))
}

/// The suite.
pub(crate) fn run_suite(ours: &Path, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let none: &[(&str, &std::ffi::OsStr)] = &[];
    // 1. The matcher alone.
    let generated = dir.join("osv-generated");
    run(Command::new(ours)
        .arg("osv-generate")
        .arg(&generated)
        .args(["50000", "2000"]))?;
    let mut split = String::new();
    let matching = median_of(3, &|| {}, || {
        let s = timed_with(
            "match 2,000 packages against 50,000 OSV advisories (load + match)",
            "wharf",
            ours,
            &[
                "osv-match",
                &generated.join("all.zip").display().to_string(),
                &generated.join("inventory.json").display().to_string(),
            ],
            none,
        )?;
        Ok(s)
    })?;
    let out = run(Command::new(ours)
        .arg("osv-match")
        .arg(generated.join("all.zip"))
        .arg(generated.join("inventory.json")))?;
    split.push_str(out.trim());

    // 2. A whole image, four scanners.
    let running = crate::backends::up()
        .context("starting the harness (Trivy, Grype, osv-scanner, skopeo)")?;
    let var = |n: &str| {
        running
            .var(n)
            .with_context(|| format!("the harness set no {n}"))
            .map(PathBuf::from)
    };
    let (trivy, grype, osv_scanner, skopeo) = (
        var("WHARF_TEST_TRIVY")?,
        var("WHARF_TEST_GRYPE")?,
        var("WHARF_TEST_OSV_SCANNER")?,
        var("WHARF_TEST_SKOPEO")?,
    );
    let (trivydb, grypedb) = (
        var("WHARF_TEST_TRIVYDB_FIXTURE")?,
        var("WHARF_TEST_GRYPEDB_FIXTURE")?,
    );
    let (base, app) = image_trees(dir)?;
    let layout = dir.join("ml-image");
    let _ = std::fs::remove_dir_all(&layout);
    build_layout(&layout, &[&base, &app])?;
    let archive = dir.join("ml-image.tar");
    let _ = std::fs::remove_file(&archive);
    run(Command::new(&skopeo)
        .args(["copy", "--quiet"])
        .arg(format!("oci:{}:test", layout.display()))
        .arg(format!("docker-archive:{}:bench/ml:1", archive.display())))?;
    let image_mib = dir_size(&layout)? as f64 / (1 << 20) as f64;

    // Databases: the generated OSV data, per ecosystem for osv-scanner (wharf reads the same
    // directory, so both load all 50,000 advisories twice over); small planted DBs for Trivy
    // and Grype, whose formats only their own builders write.
    let osvdb = dir.join("osv-db");
    let _ = std::fs::remove_dir_all(&osvdb);
    for eco in ["PyPI", "Debian"] {
        std::fs::create_dir_all(osvdb.join("osv-scalibr").join(eco))?;
    }
    std::fs::copy(
        generated.join("all.zip"),
        osvdb.join("osv-scalibr/PyPI/all.zip"),
    )?;
    std::fs::copy(
        generated.join("all.zip"),
        osvdb.join("osv-scalibr/Debian/all.zip"),
    )?;
    let trivy_cache = dir.join("trivy-cache");
    let spec = dir.join("trivy-spec.json");
    std::fs::write(
        &spec,
        serde_json::to_vec(&serde_json::json!({
            "updated_at": "2026-11-01T00:00:00Z",
            "lang": [{"ecosystem": "pip", "package": "requests", "id": "CVE-2023-32681", "vulnerable": [">=2.3.0, <2.31.0"], "patched": ["2.31.0"]}],
            "vulnerabilities": [{"id": "CVE-2023-32681", "severity": "MEDIUM"}],
        }))?,
    )?;
    run(Command::new(&trivydb).arg(&spec).arg(&trivy_cache))?;
    let grype_db = dir.join("grype-db");
    let built = dir.join("grype-built");
    let ws = dir.join("grype-ws/github");
    std::fs::create_dir_all(ws.join("results"))?;
    std::fs::write(
        ws.join("results/r.json"),
        serde_json::to_vec(
            &serde_json::json!({"schema": "https://raw.githubusercontent.com/anchore/vunnel/main/schema/vulnerability/github-security-advisory/schema-1.0.1.json", "identifier": "github:python/GHSA-j8r2-6x86-q33q", "item": {"Vulnerability": {}, "Advisory": {"Classification": "GENERAL", "Severity": "Medium", "FixedIn": [{"name": "requests", "identifier": "2.31.0", "ecosystem": "python", "namespace": "github:python", "range": ">= 2.3.0, < 2.31.0"}], "Summary": "proxy header leak", "url": "https://github.com/advisories/GHSA-j8r2-6x86-q33q", "CVE": ["CVE-2023-32681"], "Metadata": {"CVE": ["CVE-2023-32681"]}, "ghsaId": "GHSA-j8r2-6x86-q33q", "published": "2023-05-22T20:36:32Z", "updated": "2023-06-01T00:00:00Z", "withdrawn": null, "namespace": "github:python"}}}),
        )?,
    )?;
    std::fs::write(ws.join("checksums"), "0000000000000000  results/r.json\n")?;
    std::fs::write(
        ws.join("metadata.json"),
        serde_json::to_vec(
            &serde_json::json!({"provider": "github", "version": 1, "distribution_version": 1, "processor": "vunnel@wharf-bench", "schema": {"version": "1.0.2", "url": "https://raw.githubusercontent.com/anchore/vunnel/main/schema/provider-workspace-state/schema-1.0.2.json"}, "urls": [], "timestamp": "2026-11-01T00:00:00Z", "listing": {"path": "checksums", "digest": "0", "algorithm": "xxh64"}, "store": "flat-file", "stale": false}),
        )?,
    )?;
    run(Command::new(&grypedb).arg(&built).arg(&ws))?;
    run(Command::new(&grype)
        .args(["db", "import"])
        .arg(built.join("vulnerability.db"))
        .env("GRYPE_DB_CACHE_DIR", &grype_db)
        .env("GRYPE_CHECK_FOR_APP_UPDATE", "false"))?;

    let l = layout.display().to_string();
    let what = format!("scan a Python ML image ({image_mib:.0} MiB, 2 layers)");
    let mut samples: Vec<Sample> = vec![matching];
    samples.push(median_of(3, &|| {}, || {
        timed_with(
            &what,
            "wharf (osv, 50k advisories)",
            ours,
            &["osv-scan", &l, &osvdb.display().to_string()],
            none,
        )
    })?);
    let tc = trivy_cache.display().to_string();
    samples.push(median_of(3, &|| {}, || {
        timed_with(
            &what,
            "trivy image --input",
            &trivy,
            &[
                "image",
                "--quiet",
                "--format",
                "json",
                "--skip-db-update",
                "--offline-scan",
                "--cache-backend",
                "memory",
                "--cache-dir",
                &tc,
                "--input",
                &l,
            ],
            none,
        )
    })?);
    let gdb = grype_db.clone().into_os_string();
    let grype_env: Vec<(&str, &std::ffi::OsStr)> = vec![
        ("GRYPE_DB_CACHE_DIR", gdb.as_os_str()),
        ("GRYPE_DB_AUTO_UPDATE", "false".as_ref()),
        ("GRYPE_DB_VALIDATE_AGE", "false".as_ref()),
        ("GRYPE_CHECK_FOR_APP_UPDATE", "false".as_ref()),
    ];
    let oci = format!("oci-dir:{l}");
    samples.push(median_of(3, &|| {}, || {
        timed_with(
            &what,
            "grype oci-dir:",
            &grype,
            &[&oci, "-o", "json", "-q"],
            &grype_env,
        )
    })?);
    let odb = osvdb.clone().into_os_string();
    let osv_env: Vec<(&str, &std::ffi::OsStr)> =
        vec![("OSV_SCANNER_LOCAL_DB_CACHE_DIRECTORY", odb.as_os_str())];
    let a = archive.display().to_string();
    samples.push(median_of(3, &|| {}, || {
        let (seconds, rss_kib, _) = crate::bench::time_command(
            &osv_scanner,
            &[
                "scan",
                "image",
                "--archive",
                "--offline",
                "--format",
                "json",
                &a,
            ],
            &osv_env,
            &[0, 1],
        )?;
        Ok(Sample {
            what: what.clone(),
            tool: "osv-scanner scan image --archive".into(),
            seconds,
            rss_kib,
        })
    })?);
    println!("| operation | tool | wall time | peak RSS |");
    println!("|---|---|---|---|");
    for s in &samples {
        println!(
            "| {} | {} | {:.2} s | {} MiB |",
            s.what,
            s.tool,
            s.seconds,
            s.rss_kib / 1024
        );
    }
    println!();
    println!("wharf's matcher, one run: {split}");
    Ok(())
}

/// Bytes of the files under `dir`.
fn dir_size(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}
