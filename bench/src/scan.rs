//! The scan benchmark's operations: a reproducible OSV database and inventory (a fixed-seed
//! generator, so every run and every machine matches the same data), matching timed apart
//! from loading, and a whole image scan as `cargo xtask pipeline` runs it.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use wharf_core::scan::ScanOptions;
use wharf_core::{Package, ScanTarget, Scanner};

/// xorshift64*: reproducible, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Ecosystem, a version in its scheme from three numbers.
const ECOSYSTEMS: [(&str, u64); 3] = [("PyPI", 60), ("Debian:12", 30), ("npm", 10)];
/// CVSS vectors the generated advisories carry (9.8, 5.3, 5.6).
const VECTORS: [&str; 3] = [
    "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
    "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L",
    "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:H/I:H/A:N",
];
/// Distinct package names per ecosystem.
const NAMES: u64 = 5_000;

fn version(eco: &str, a: u64, b: u64, c: u64) -> String {
    match eco {
        "Debian:12" => format!("{a}.{b}.{c}-{}", 1 + c % 3),
        _ => format!("{a}.{b}.{c}"),
    }
}

fn pick_ecosystem(rng: &mut Rng) -> &'static str {
    let r = rng.below(100);
    let mut acc = 0;
    for (eco, share) in ECOSYSTEMS {
        acc += share;
        if r < acc {
            return eco;
        }
    }
    "PyPI"
}

fn name(eco: &str, i: u64) -> String {
    match eco {
        "PyPI" => format!("py_pkg-{i}"),
        "Debian:12" => format!("libdeb{i}"),
        _ => format!("node-pkg-{i}"),
    }
}

/// Write `advisories` OSV records (a ZIP, as OSV's exports) to `dir/all.zip` and an
/// inventory of `packages` packages to `dir/inventory.json`.
pub(crate) fn generate(dir: &Path, advisories: usize, packages: usize) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut rng = Rng(0x005E_ED0F_05C4_2026);
    let mut files = Vec::with_capacity(advisories);
    for k in 0..advisories {
        let eco = pick_ecosystem(&mut rng);
        let n = rng.below(NAMES);
        let (a, b) = (rng.below(5), rng.below(20));
        let mut events = vec![
            serde_json::json!({"introduced": if rng.below(3) == 0 { "0".to_owned() } else { version(eco, a, b, 0) }}),
        ];
        events.push(
            serde_json::json!({"fixed": version(eco, a, b + 1 + rng.below(3), rng.below(10))}),
        );
        if rng.below(4) == 0 {
            events.push(serde_json::json!({"introduced": version(eco, a + 1, 0, 0)}));
            events.push(serde_json::json!({"last_affected": version(eco, a + 1, rng.below(10), rng.below(10))}));
        }
        let mut affected = serde_json::json!({
            "package": {"ecosystem": eco, "name": name(eco, n)},
            "ranges": [{"type": if eco == "npm" { "SEMVER" } else { "ECOSYSTEM" }, "events": events}],
        });
        if rng.below(5) == 0 {
            affected["versions"] = (0..10).map(|i| version(eco, a, b, i)).collect();
        }
        let id = format!("BENCH-{k:06}");
        let mut rec = serde_json::json!({
            "schema_version": "1.6.0",
            "id": id,
            "modified": "2026-11-30T00:00:00Z",
            "aliases": [format!("CVE-2099-{k:06}")],
            "summary": format!("generated advisory {k}"),
            "details": "Generated for wharf's scan benchmark: a fixed-seed advisory of typical size and shape.",
            "affected": [affected],
            "severity": [{"type": "CVSS_V3", "score": VECTORS[rng.below(3) as usize]}],
            "references": [{"type": "ADVISORY", "url": format!("https://example.invalid/advisories/{k}")}],
        });
        if rng.below(20) == 0 {
            rec["withdrawn"] = "2026-12-01T00:00:00Z".into();
        }
        files.push((format!("{id}.json"), serde_json::to_vec(&rec)?));
    }
    wharf_scan::write_zip(&dir.join("all.zip"), &files)?;
    let mut inventory = Vec::with_capacity(packages);
    for _ in 0..packages {
        let eco = pick_ecosystem(&mut rng);
        let n = rng.below(NAMES);
        let v = version(eco, rng.below(5), rng.below(22), rng.below(10));
        inventory.push(Package::new(name(eco, n), v, eco));
    }
    std::fs::write(dir.join("inventory.json"), serde_json::to_vec(&inventory)?)?;
    println!(
        "{advisories} advisories, {packages} packages in {}",
        dir.display()
    );
    Ok(())
}

/// Load the database at `db`, match `inventory` against it; prints load and match times.
pub(crate) fn match_inventory(db: &Path, inventory: &Path) -> anyhow::Result<()> {
    let packages: Vec<Package> = serde_json::from_slice(
        &std::fs::read(inventory).with_context(|| format!("reading {}", inventory.display()))?,
    )?;
    let start = Instant::now();
    let db = wharf_scan::OsvDatabase::open(db)?;
    let loaded = start.elapsed();
    let start = Instant::now();
    let (findings, _) = db.match_packages(&packages);
    let matched = start.elapsed();
    println!(
        "load {:.1} ms, match {:.1} ms: {} findings for {} packages from {} advisories",
        loaded.as_secs_f64() * 1000.0,
        matched.as_secs_f64() * 1000.0,
        findings.len(),
        packages.len(),
        db.len()
    );
    Ok(())
}

/// Scan the image in the OCI layout `layout` (its one manifest) with the OSV database `db`,
/// as the pipeline's scan stage does; prints the finding count.
pub(crate) fn scan_layout(layout: &Path, db: &Path) -> anyhow::Result<()> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json"))?)?;
    let digest: wharf_core::Digest = index["manifests"][0]["digest"]
        .as_str()
        .context("no manifest in index.json")?
        .parse()?;
    let target = ScanTarget::Layout {
        path: layout.to_owned(),
        digest,
    };
    let scanner = wharf_scan::OsvScanner::new(db);
    let report = wharf_core::blocking::block_on(scanner.scan(&target, &ScanOptions::default()))?;
    println!(
        "{} findings in {} packages",
        report.findings.len(),
        report.packages.len()
    );
    Ok(())
}
