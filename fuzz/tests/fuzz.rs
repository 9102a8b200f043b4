#![allow(clippy::unwrap_used)]
//! The bounded fuzz run `cargo test` does: one test per target, each running the target on
//! every file of `corpus/<target>/`, then on seeded mutations of them for
//! `WHARF_FUZZ_SECONDS` (default 3) seconds.
//!
//! A finding fails the test, names the target, the seed and the input, and saves the input
//! under `target/fuzz-findings/<target>/`:
//! - a panic (caught per input with `catch_unwind`);
//! - a slow input: over `WHARF_FUZZ_HANG_MS` (default 2000) twice in a row; one that never
//!   returns is reported after five times that;
//! - memory: each target runs in a child process (this test binary again) under
//!   `prlimit --data` (`WHARF_FUZZ_MEMORY_MB`, default 1024; 0 runs in-process, unlimited);
//!   a child that dies is re-run over the inputs since its last progress mark, each saved
//!   before it runs, so the one that kills it is on disk.
//!
//! The inputs are a pure function of the seed: `WHARF_FUZZ_SEED=<seed>` replays a run.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wharf_fuzz::mutate::{Rng, mutate};
use wharf_fuzz::{TARGETS, Target};

macro_rules! fuzz_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run(stringify!($name));
            }
        )*

        #[test]
        fn every_target_has_a_test_a_corpus_and_a_libfuzzer_target() {
            let tests = [$(stringify!($name)),*];
            let manifest = std::fs::read_to_string(dir().join("libfuzzer/Cargo.toml")).unwrap();
            for t in TARGETS {
                assert!(tests.contains(&t.name), "no test for target {}", t.name);
                assert!(!corpus(t.name).is_empty(), "corpus/{} is empty", t.name);
                let file = dir().join("libfuzzer/fuzz_targets").join(format!("{}.rs", t.name));
                let src = std::fs::read_to_string(&file)
                    .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                assert!(
                    src.contains(&format!("wharf_fuzz::{}(", t.name)),
                    "{} does not call wharf_fuzz::{}",
                    file.display(),
                    t.name
                );
                assert!(
                    manifest.contains(&format!("name = \"{}\"", t.name)),
                    "libfuzzer/Cargo.toml has no [[bin]] {}",
                    t.name
                );
            }
            assert_eq!(tests.len(), TARGETS.len(), "a test for a target that does not exist");
        }
    };
}

fuzz_tests!(
    model_manifest,
    wharf_toml,
    oci_manifest,
    oci_layout,
    cosign_payload,
    cosign_signature,
    sigstore_bundle,
    trusted_root,
    dsse,
    audit_record,
    x509,
    reference,
);

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `corpus/<target>/`: every file, sorted by name.
fn corpus(name: &str) -> Vec<(String, Vec<u8>)> {
    let d = dir().join("corpus").join(name);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&d)
        .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

fn findings_dir(target: &str) -> PathBuf {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir().parent().unwrap().join("target"));
    target_dir.join("fuzz-findings").join(target)
}

#[derive(Debug, Clone)]
struct Settings {
    seed: u64,
    budget: Duration,
    hang: Duration,
    memory_mb: u64,
    /// Only run inputs `from..to` (the rest are generated and skipped), saving each first.
    trace: Option<(u64, u64)>,
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={v:?} is not a number")))
}

impl Settings {
    fn from_env() -> Self {
        let seed = env_u64("WHARF_FUZZ_SEED").unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            (t.as_nanos() as u64) ^ u64::from(std::process::id()).rotate_left(32)
        });
        let seconds: f64 = std::env::var("WHARF_FUZZ_SECONDS")
            .ok()
            .map(|s| {
                s.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("WHARF_FUZZ_SECONDS={s:?} is not a number"))
            })
            .unwrap_or(3.0);
        let trace = std::env::var("WHARF_FUZZ_TRACE").ok().map(|t| {
            let (a, b) = t.split_once("..").expect("WHARF_FUZZ_TRACE=from..to");
            (a.parse().unwrap(), b.parse().unwrap())
        });
        Self {
            seed,
            budget: Duration::from_secs_f64(seconds.max(0.0)),
            hang: Duration::from_millis(env_u64("WHARF_FUZZ_HANG_MS").unwrap_or(2000)),
            memory_mb: env_u64("WHARF_FUZZ_MEMORY_MB").unwrap_or(1024),
            trace,
        }
    }
}

/// One test: in a memory-limited child process where `prlimit` exists, else here.
fn run(name: &str) {
    let target = *wharf_fuzz::target(name).unwrap();
    let settings = Settings::from_env();
    if std::env::var_os("WHARF_FUZZ_WORKER").is_some() {
        return fuzz(target, &settings);
    }
    if settings.memory_mb == 0 || !has_prlimit() {
        println!(
            "wharf-fuzz {name}: memory not limited ({})",
            if settings.memory_mb == 0 {
                "WHARF_FUZZ_MEMORY_MB=0"
            } else {
                "no prlimit on this machine"
            }
        );
        return fuzz(target, &settings);
    }
    let first = child(name, &settings, None);
    if first.status.success() {
        print!("{}", first.stdout);
        return;
    }
    print!("{}", first.stdout);
    eprint!("{}", first.stderr);
    if first.stdout.contains("wharf-fuzz finding:") {
        panic!("{name}: finding (above)");
    }
    // It died without a report: memory (an abort), or a signal. Find the input.
    let last = first
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("wharf-fuzz progress "))
        .filter_map(|n| n.trim().parse::<u64>().ok())
        .next_back()
        .unwrap_or(0);
    let range = (last, last + PROGRESS_EVERY + 1);
    let in_flight = findings_dir(name).join("in-flight");
    let _ = std::fs::remove_file(&in_flight);
    let again = child(name, &settings, Some(range));
    print!("{}", again.stdout);
    eprint!("{}", again.stderr);
    let how = match first.status.code() {
        Some(c) => format!("exit code {c}"),
        None => "a signal (an abort: likely the memory limit)".into(),
    };
    if !again.status.success() && in_flight.exists() {
        let input = std::fs::read(&in_flight).unwrap();
        let saved = save(name, "memory", &input);
        let _ = std::fs::remove_file(&in_flight);
        panic!(
            "wharf-fuzz finding: {name} memory (seed {:#x}): the worker died by {how} under a {} MiB data limit on this input\n{}",
            settings.seed,
            settings.memory_mb,
            describe(&input, &saved, name, settings.seed)
        );
    }
    if again.status.success() {
        panic!(
            "wharf-fuzz {name}: the worker died by {how} (seed {:#x}, near input #{last}), and not again when re-run over inputs {}..{}",
            settings.seed, range.0, range.1
        );
    }
    panic!(
        "wharf-fuzz {name}: the worker died by {how} (seed {:#x}), and again before it ran an input when re-run: see its output above",
        settings.seed
    );
}

struct ChildOutput {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

fn has_prlimit() -> bool {
    Command::new("prlimit")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// This test binary again, for `name` only, under the memory limit.
fn child(name: &str, s: &Settings, trace: Option<(u64, u64)>) -> ChildOutput {
    let bytes = s.memory_mb * 1024 * 1024;
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--data={bytes}:{bytes}"))
        .arg("--")
        .arg(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("WHARF_FUZZ_WORKER", "1")
        .env("WHARF_FUZZ_SEED", s.seed.to_string())
        .env("WHARF_FUZZ_SECONDS", s.budget.as_secs_f64().to_string())
        // Fewer malloc arenas: address space is not what is being measured.
        .env("MALLOC_ARENA_MAX", "2");
    match trace {
        Some((a, b)) => cmd.env("WHARF_FUZZ_TRACE", format!("{a}..{b}")),
        None => cmd.env_remove("WHARF_FUZZ_TRACE"),
    };
    let out = cmd.output().unwrap();
    ChildOutput {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

const PROGRESS_EVERY: u64 = 64;

/// The longest mutated input: long enough for deep nesting, long strings and quadratic
/// behaviour to show, short enough that a debug build reads it well within the time limit
/// (the targets themselves take up to [`wharf_fuzz::MAX_INPUT`]).
const MUTATION_MAX: usize = 256 << 10;

/// Input `n` of a run: the corpus first, then mutations. Generating input `n` needs the
/// generator's state after inputs `0..n`, so callers walk them in order.
struct Inputs<'a> {
    corpus: &'a [(String, Vec<u8>)],
    seeds: Vec<Vec<u8>>,
    rng: Rng,
    target: Target,
    n: u64,
}

impl Inputs<'_> {
    fn next(&mut self) -> (u64, String, Vec<u8>) {
        let n = self.n;
        self.n += 1;
        if let Some((file, bytes)) = self.corpus.get(n as usize) {
            return (n, format!("seed {file}"), bytes.clone());
        }
        let i = self.rng.below(self.corpus.len());
        let (file, base) = &self.corpus[i];
        let input = mutate(
            base,
            &self.seeds,
            self.target.grammar,
            &mut self.rng,
            MUTATION_MAX,
        );
        (n, format!("mutation of {file}"), input)
    }
}

struct Shared {
    /// The input running and when it started (nanoseconds since the run began; 0: none).
    current: Mutex<(u64, String, Vec<u8>)>,
    started: AtomicU64,
}

struct Finding {
    kind: &'static str,
    message: String,
    n: u64,
    label: String,
    input: Vec<u8>,
}

/// The loop: seeds, then mutations until the budget is spent, the watchdog on this thread.
fn fuzz(target: Target, s: &Settings) {
    let corpus = corpus(target.name);
    assert!(!corpus.is_empty(), "corpus/{} is empty", target.name);
    let shared = Arc::new(Shared {
        current: Mutex::new((0, String::new(), Vec::new())),
        started: AtomicU64::new(0),
    });
    let t0 = Instant::now();
    let worker = {
        let shared = shared.clone();
        let s = s.clone();
        let corpus = corpus.clone();
        std::thread::Builder::new()
            .name(format!("fuzz-{}", target.name))
            .spawn(move || work(target, &s, &corpus, &shared, t0))
            .unwrap()
    };
    let abort_after = (s.hang * 5).max(Duration::from_secs(10));
    loop {
        if worker.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        let started = shared.started.load(Ordering::SeqCst);
        if started == 0 {
            continue;
        }
        let running = t0.elapsed().saturating_sub(Duration::from_nanos(started));
        if running > abort_after {
            let (n, label, input) = shared.current.lock().unwrap().clone();
            let f = Finding {
                kind: "hang",
                message: format!(
                    "an input has run for {:.1} s and not returned",
                    running.as_secs_f64()
                ),
                n,
                label,
                input,
            };
            let report = report(target.name, s.seed, &f);
            println!("{report}");
            std::io::stdout().flush().unwrap();
            if std::env::var_os("WHARF_FUZZ_WORKER").is_some() {
                // The stuck thread cannot be stopped; the parent reads the report.
                std::process::exit(2);
            }
            panic!("{report}");
        }
    }
    match worker.join().unwrap() {
        Ok(stats) => println!(
            "wharf-fuzz {}: {} seeds and {} mutations in {:.1} s (seed {:#x}{}), slowest input {} ms{}",
            target.name,
            corpus.len(),
            stats.inputs.saturating_sub(corpus.len() as u64),
            t0.elapsed().as_secs_f64(),
            s.seed,
            if std::env::var_os("WHARF_FUZZ_WORKER").is_some() {
                format!(", data limit {} MiB", s.memory_mb)
            } else {
                String::new()
            },
            stats.slowest.as_millis(),
            pending_note(target.name),
        ),
        Err(f) => {
            let report = report(target.name, s.seed, &f);
            println!("{report}");
            panic!("{report}");
        }
    }
}

/// What the run skipped for [`wharf_fuzz::PENDING`] findings of this target.
fn pending_note(target: &str) -> String {
    let hits = wharf_fuzz::pending_hits();
    wharf_fuzz::PENDING
        .iter()
        .filter(|p| p.target == target)
        .map(|p| {
            format!(
                "; pending check \"{}\" skipped on {hits} inputs (awaiting a fix in {})",
                p.check, p.owner
            )
        })
        .collect()
}

struct Stats {
    inputs: u64,
    slowest: Duration,
}

fn work(
    target: Target,
    s: &Settings,
    corpus: &[(String, Vec<u8>)],
    shared: &Shared,
    t0: Instant,
) -> Result<Stats, Finding> {
    let mut inputs = Inputs {
        corpus,
        seeds: corpus.iter().map(|(_, b)| b.clone()).collect(),
        rng: Rng::new(s.seed),
        target,
        n: 0,
    };
    let in_flight = findings_dir(target.name).join("in-flight");
    let mut slowest = Duration::ZERO;
    loop {
        let (n, label, input) = inputs.next();
        if let Some((from, to)) = s.trace {
            if n < from {
                continue;
            }
            if n >= to {
                break;
            }
            std::fs::create_dir_all(in_flight.parent().unwrap()).unwrap();
            std::fs::write(&in_flight, &input).unwrap();
        } else if n >= corpus.len() as u64 && t0.elapsed() >= s.budget {
            break;
        }
        if n % PROGRESS_EVERY == 0 {
            println!("wharf-fuzz progress {n}");
        }
        *shared.current.lock().unwrap() = (n, label.clone(), input.clone());
        let took = time(target, &input, shared, t0).map_err(|message| Finding {
            kind: "panic",
            message,
            n,
            label: label.clone(),
            input: input.clone(),
        })?;
        if took > s.hang {
            // Once may be the machine; twice is the input.
            let again = time(target, &input, shared, t0).unwrap_or(took);
            if again > s.hang {
                return Err(Finding {
                    kind: "slow",
                    message: format!(
                        "the input took {:.2} s, then {:.2} s (limit {:.1} s)",
                        took.as_secs_f64(),
                        again.as_secs_f64(),
                        s.hang.as_secs_f64()
                    ),
                    n,
                    label,
                    input,
                });
            }
            println!(
                "wharf-fuzz {}: input #{n} took {:.2} s once and {:.2} s when re-run: machine load, not counted",
                target.name,
                took.as_secs_f64(),
                again.as_secs_f64()
            );
        }
        slowest = slowest.max(took);
    }
    if s.trace.is_some() {
        let _ = std::fs::remove_file(&in_flight);
    }
    Ok(Stats {
        inputs: inputs.n,
        slowest,
    })
}

/// Run the target once, timed; the panic message when it panics.
fn time(target: Target, input: &[u8], shared: &Shared, t0: Instant) -> Result<Duration, String> {
    let start = Instant::now();
    shared
        .started
        .store(t0.elapsed().as_nanos().max(1) as u64, Ordering::SeqCst);
    let r = std::panic::catch_unwind(|| (target.run)(input));
    shared.started.store(0, Ordering::SeqCst);
    let took = start.elapsed();
    r.map(|()| took).map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "a panic without a message".into())
    })
}

fn save(target: &str, kind: &str, input: &[u8]) -> PathBuf {
    let d = findings_dir(target);
    std::fs::create_dir_all(&d).unwrap();
    let hash = wharf_core::Digest::sha256_of(input);
    let path = d.join(format!("{kind}-{}", &hash.hex()[..12]));
    std::fs::write(&path, input).unwrap();
    path
}

fn report(target: &str, seed: u64, f: &Finding) -> String {
    let saved = save(target, f.kind, &f.input);
    format!(
        "wharf-fuzz finding: {target} {} (seed {seed:#x}, input #{}: {})\n  message: {}\n{}",
        f.kind,
        f.n,
        f.label,
        f.message,
        describe(&f.input, &saved, target, seed)
    )
}

fn describe(input: &[u8], saved: &Path, target: &str, seed: u64) -> String {
    let shown = &input[..input.len().min(512)];
    let hex: String = shown.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "  input: {} bytes, saved to {}\n  hex{}: {hex}\n  text: {:?}\n  replay: WHARF_FUZZ_SEED={seed:#x} cargo test -p wharf-fuzz --test fuzz {target}\n  keep it: cp {} fuzz/corpus/{target}/regression-<what> (then fix, and the seed run checks it for good)",
        input.len(),
        saved.display(),
        if shown.len() < input.len() {
            " (first 512 bytes)"
        } else {
            ""
        },
        String::from_utf8_lossy(&shown[..shown.len().min(200)]),
        saved.display(),
    )
}
