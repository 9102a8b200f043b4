//! `cargo xtask bench --suite audit`: the audit log's appends (file store, S3 Object Lock on
//! moto) and verification, each beside the glue it replaces — a Python script doing the same
//! work (canonical JSON, SHA-256 chain, exclusive fsynced files; boto3 puts with lock
//! headers) — on the same data, in one run.

use std::path::Path;

use anyhow::Context;

use crate::bench::{Sample, timed};

/// Appends to the file store, per tool.
const FILE_APPENDS: u64 = 2_000;
/// Appends to S3 (moto), per tool.
const S3_APPENDS: u64 = 300;

/// The glue for file appends: a record like wharf's, canonical JSON, SHA-256 chain, each
/// record created exclusively, fsynced (file and directory) and made read-only.
const PY_APPEND: &str = r#"
import hashlib, json, os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d, exist_ok=True)
prev = None
for i in range(n):
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    event = {"type": "run", "run_id": f"run-glue-{i}", "project": "fraud-detector",
             "started_at": now, "finished_at": now, "environment": "prod",
             "actor": {"id": "repo:acme/models:ref:refs/heads/main", "kind": "oidc",
                       "issuer": "https://token.actions.githubusercontent.com"},
             "source_commit": "3f2a9c1d4e5b6a7980f1e2d3c4b5a69788796a5b",
             "model": {"name": "fraud-detector", "version": "1.4.2"},
             "image_digest": "sha256:" + hashlib.sha256(f"image{i}".encode()).hexdigest(),
             "outcome": "passed",
             "stages": [{"name": "governance", "status": "passed", "started_at": now,
                         "duration_ms": 14, "summary": "10 rules passed",
                         "evidence": [{"kind": "policy-decision", "digest": "sha256:" + hashlib.sha256(str(i).encode()).hexdigest()}],
                         "details": {"allow": True, "rules": 10, "warnings": [],
                                     "metrics": {"accuracy": 0.931, "f1": 0.874, "demographic_parity": 0.041, "drift": 0.12}}},
                        {"name": "package", "status": "passed", "started_at": now, "duration_ms": 812,
                         "summary": "pushed models/fraud-detector",
                         "evidence": [{"kind": "image-manifest", "digest": "sha256:" + hashlib.sha256(f"m{i}".encode()).hexdigest()}]}]}
    rec = {"event": event, "prev_hash": prev, "recorded_at": now, "sequence": i}
    canon = lambda o: json.dumps(o, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    rec["hash"] = prev = "sha256:" + hashlib.sha256(canon(rec).encode()).hexdigest()
    path = os.path.join(d, f"{i:012}.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    os.write(fd, (canon(rec) + "\n").encode())
    os.fsync(fd)
    os.close(fd)
    dfd = os.open(d, os.O_RDONLY)
    os.fsync(dfd)
    os.close(dfd)
"#;

/// The glue for verification: read every record, recompute its hash, check the link.
const PY_VERIFY: &str = r#"
import hashlib, json, os, sys
d = sys.argv[1]
prev = None
n = 0
for name in sorted(os.listdir(d)):
    with open(os.path.join(d, name), encoding="utf-8") as f:
        rec = json.loads(f.read())
    stated = rec.pop("hash")
    canon = json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    h = "sha256:" + hashlib.sha256(canon.encode("utf-8")).hexdigest()
    if h != stated or rec["prev_hash"] != prev:
        sys.exit(f"{name} does not verify")
    prev = h
    n += 1
print(n, "ok")
"#;

/// The glue for S3: boto3 puts with Object Lock headers, a SHA-256 checksum and
/// If-None-Match, each followed by a HEAD to confirm the lock (as wharf does).
const PY_APPEND_S3: &str = r#"
import datetime, hashlib, json, sys, boto3
endpoint, bucket, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="bench", aws_secret_access_key="bench")
s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
prev = None
for i in range(n):
    rec = {"event": {"type": "run", "run_id": f"run-glue-{i}", "outcome": "passed"},
           "prev_hash": prev, "sequence": i}
    body = json.dumps(rec, sort_keys=True, separators=(",", ":")).encode()
    prev = "sha256:" + hashlib.sha256(body).hexdigest()
    key = f"audit/records/{i:012}.json"
    until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    s3.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*",
                  ChecksumAlgorithm="SHA256", ObjectLockMode="COMPLIANCE",
                  ObjectLockRetainUntilDate=until)
    s3.head_object(Bucket=bucket, Key=key)
"#;

/// Runs the audit benchmarks and prints their table.
pub(crate) fn run(ours: &Path, dir: &Path, verify_records: u64) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let running = crate::backends::up().context("starting moto")?;
    let moto = running
        .var("WHARF_TEST_MOTO")
        .context("the harness started no moto")?;
    let moto_python = crate::backends::venv_python("moto-venv")?;
    let python = Path::new("/usr/bin/python3");
    let s = |p: &Path| p.to_string_lossy().into_owned();
    let n = FILE_APPENDS.to_string();
    let tag = std::process::id();
    let mut samples: Vec<(Sample, u64)> = Vec::new();

    let what = format!("append {FILE_APPENDS} records, file store (fsync each)");
    samples.push((
        timed(
            &what,
            "wharf FileAuditLog",
            ours,
            &["audit-append", &s(&dir.join("ours")), &n],
        )?,
        FILE_APPENDS,
    ));
    samples.push((
        timed(
            &what,
            "Python glue",
            python,
            &["-c", PY_APPEND, &s(&dir.join("glue")), &n],
        )?,
        FILE_APPENDS,
    ));
    let what = format!("append {S3_APPENDS} records, S3 Object Lock (moto)");
    let n = S3_APPENDS.to_string();
    samples.push((
        timed(
            &what,
            "wharf S3Store",
            ours,
            &["audit-append-s3", &moto, &format!("bench-ours-{tag}"), &n],
        )?,
        S3_APPENDS,
    ));
    samples.push((
        timed(
            &what,
            "boto3 glue",
            &moto_python,
            &["-c", PY_APPEND_S3, &moto, &format!("bench-glue-{tag}"), &n],
        )?,
        S3_APPENDS,
    ));

    eprintln!("writing {verify_records} records to verify…");
    let big = dir.join("big");
    let n = verify_records.to_string();
    samples.push((
        timed(
            &format!("append {verify_records} records, file store"),
            "wharf FileAuditLog",
            ours,
            &["audit-append", &s(&big), &n],
        )?,
        verify_records,
    ));
    // One untimed pass so both verifiers find the records in the page cache alike.
    timed("warm-up", "wharf verify", ours, &["audit-verify", &s(&big)])?;
    let what = format!("verify {verify_records} records, file store (page cache warm)");
    samples.push((
        timed(&what, "wharf verify", ours, &["audit-verify", &s(&big)])?,
        verify_records,
    ));
    samples.push((
        timed(
            &what,
            "Python glue (hashes and links only)",
            python,
            &["-c", PY_VERIFY, &s(&big.join("records"))],
        )?,
        verify_records,
    ));

    println!("\n| operation | tool | wall time | records/s | peak RSS |");
    println!("|---|---|---|---|---|");
    for (s, n) in &samples {
        println!(
            "| {} | {} | {:.2} s | {:.0} | {:.1} MiB |",
            s.what,
            s.tool,
            s.seconds,
            *n as f64 / s.seconds.max(1e-9),
            s.rss_kib as f64 / 1024.0
        );
    }
    if let Some((v, n)) = samples.iter().find(|(s, _)| s.tool == "wharf verify") {
        println!(
            "\nverify: {:.0} records/s (target >= 200000), wall time including process start",
            *n as f64 / v.seconds.max(1e-9)
        );
    }
    Ok(())
}
