//! The project's audit log, opened from `wharf.toml`'s `[audit]` section, and
//! `cargo xtask audit verify|show|query|export` over it.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use wharf_audit::{Query, VerificationReport};
use wharf_core::audit::{StoredRecord, VerifyRange};
use wharf_core::{AuditEvent, Digest, Verifier};
use wharf_pipeline::Config;
use wharf_sign::PublicKey;

/// The audit log every command of a project uses.
pub(crate) type ProjectLog = wharf_pipeline::ProjectAuditLog;

/// Open the log `[audit]` describes (the library's `Config::open_audit_log`).
pub(crate) async fn open_log(config: &Config) -> anyhow::Result<ProjectLog> {
    Ok(config.open_audit_log().await?)
}

/// Verify, show, query or export the audit log of a project.
#[derive(clap::Args, Debug)]
pub(crate) struct AuditCmd {
    #[command(subcommand)]
    action: Action,
    /// The project config (default: examples/wharf.toml).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(clap::Args, Debug, Clone, Default)]
struct RangeArgs {
    /// First sequence number (default: the first record).
    #[arg(long, value_name = "SEQ")]
    from: Option<u64>,
    /// Last sequence number (default: the head).
    #[arg(long, value_name = "SEQ")]
    to: Option<u64>,
    /// Verify checkpoint signatures with this public key (PEM) instead of the project's
    /// checkpoint key: what an auditor who holds only the public key does.
    #[arg(long, value_name = "FILE")]
    public_key: Option<PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Walk the chain (or a range), recompute every hash, check every checkpoint signature;
    /// exit 1 naming each problem if anything is wrong.
    Verify {
        #[command(flatten)]
        range: RangeArgs,
        /// Print the verification report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the record of one run as JSON.
    Show {
        /// The run id (`run-20261122T…`), as printed by `cargo xtask pipeline`.
        run_id: String,
    },
    /// List the records of runs matching all the given conditions.
    Query {
        /// Only this run.
        #[arg(long, value_name = "RUN_ID")]
        run: Option<String>,
        /// Only runs that produced this image digest (`sha256:…`).
        #[arg(long, value_name = "DIGEST")]
        digest: Option<Digest>,
        /// Recorded at or after this time (RFC 3339, e.g. 2026-11-01T00:00:00Z).
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        since: Option<OffsetDateTime>,
        /// Recorded before this time (RFC 3339).
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        until: Option<OffsetDateTime>,
        /// Print whole records as JSON lines instead of one summary line each.
        #[arg(long)]
        json: bool,
    },
    /// Write a range as JSON lines (each line a stored record) and a verification report
    /// beside it (`<out>.report.json`), for an auditor; exit 1 if the range does not verify.
    Export {
        #[command(flatten)]
        range: RangeArgs,
        /// The JSON-lines file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

impl RangeArgs {
    /// Refuse a range that ends before it starts: it would check nothing and pass.
    fn check(&self) -> anyhow::Result<()> {
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from > to
        {
            bail!(
                "--from {from} is after --to {to}: the range is empty; give --from at or before --to"
            );
        }
        Ok(())
    }
}

fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("{s:?} is not an RFC 3339 time (2026-11-01T00:00:00Z): {e}"))
}

impl AuditCmd {
    pub(crate) fn run(&self) -> ExitCode {
        match self.execute() {
            Ok(code) => code,
            Err(err) => {
                eprintln!("error: {}", crate::pipeline::one_line(&err));
                ExitCode::from(2)
            }
        }
    }

    fn execute(&self) -> anyhow::Result<ExitCode> {
        let path = self
            .config
            .clone()
            .unwrap_or_else(|| crate::project_root().join("examples/wharf.toml"));
        let config = Config::load(&path)?;
        if config.audit.url.is_none() && !config.audit_dir().join("records").is_dir() {
            bail!(
                "no audit log at {}: run `cargo xtask pipeline` first",
                config.audit_dir().display()
            );
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(self.act(&config))
    }

    async fn act(&self, config: &Config) -> anyhow::Result<ExitCode> {
        let log = open_log(config).await?;
        match &self.action {
            Action::Verify { range, json } => {
                range.check()?;
                let report = verify(&log, config, range, None).await?;
                if *json {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                } else {
                    println!("{report}");
                }
                Ok(verdict(&report))
            }
            Action::Show { run_id } => {
                let rec = log.find_run(run_id).await?.with_context(|| {
                    format!(
                        "no run {run_id} in the audit log at {}: `cargo xtask audit query` lists the runs it holds",
                        log.root_location()
                    )
                })?;
                println!("{}", serde_json::to_string_pretty(&rec)?);
                Ok(ExitCode::SUCCESS)
            }
            Action::Query {
                run,
                digest,
                since,
                until,
                json,
            } => {
                if let (Some(since), Some(until)) = (since, until)
                    && since >= until
                {
                    bail!(
                        "--since {} is not before --until {}: the time range is empty",
                        since.format(&Rfc3339)?,
                        until.format(&Rfc3339)?
                    );
                }
                let mut q = Query::default().between(*since, *until);
                if let Some(run) = run {
                    q = q.run_id(run.clone());
                }
                if let Some(d) = digest {
                    q = q.image_digest(d.clone());
                }
                let found = log.query(&q).await?;
                for rec in &found {
                    if crate::out::closed() {
                        break;
                    }
                    if *json {
                        println!("{}", serde_json::to_string(rec)?);
                    } else {
                        println!("{}", summary_line(rec));
                    }
                }
                if !*json {
                    eprintln!("{} records", found.len());
                }
                Ok(ExitCode::SUCCESS)
            }
            Action::Export { range, out } => {
                range.check()?;
                let file = File::create(out)
                    .with_context(|| format!("cannot create {}", out.display()))?;
                let mut writer = BufWriter::new(file);
                let report = verify(&log, config, range, Some(&mut writer)).await?;
                drop(writer);
                let mut report_path = out.clone().into_os_string();
                report_path.push(".report.json");
                let report_path = PathBuf::from(report_path);
                std::fs::write(&report_path, serde_json::to_vec_pretty(&report)?)
                    .with_context(|| format!("cannot write {}", report_path.display()))?;
                println!(
                    "{} records -> {}; report -> {}",
                    report.checked,
                    out.display(),
                    report_path.display()
                );
                println!("{report}");
                Ok(verdict(&report))
            }
        }
    }
}

async fn verify(
    log: &ProjectLog,
    config: &Config,
    args: &RangeArgs,
    out: Option<&mut (dyn std::io::Write + Send)>,
) -> anyhow::Result<VerificationReport> {
    let mut range = VerifyRange::default();
    range.from = args.from;
    range.to = args.to;
    let public: Option<PublicKey> = match &args.public_key {
        Some(p) => Some(PublicKey::from_file(p)?),
        None => config
            .checkpoint_key_path()
            .map(|p| wharf_sign::public_path(&p))
            .filter(|p| p.exists())
            .map(|p| PublicKey::from_file(&p))
            .transpose()?,
    };
    let verifier = public.as_ref().map(|k| k as &dyn Verifier);
    Ok(match out {
        Some(out) => log.export(&range, verifier, out).await?,
        None => log.verify_with(&range, verifier).await?,
    })
}

fn verdict(report: &VerificationReport) -> ExitCode {
    if report.is_intact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn summary_line(rec: &StoredRecord) -> String {
    let time = rec
        .recorded_at
        .format(&Rfc3339)
        .unwrap_or_else(|_| rec.recorded_at.to_string());
    match &rec.event {
        AuditEvent::Run(r) => format!(
            "#{:<6} {time}  {:<36} {:<7} {:<4} {}",
            rec.sequence,
            r.run_id,
            r.outcome.as_str(),
            r.environment.to_string(),
            r.image_digest
                .as_ref()
                .map_or_else(|| "-".to_owned(), ToString::to_string)
        ),
        AuditEvent::Event(e) => format!(
            "#{:<6} {time}  {:<36} {:<7} {:<4} {}",
            rec.sequence,
            e.id,
            e.kind,
            e.environment
                .map_or_else(|| "-".to_owned(), |env| env.to_string()),
            e.subject
                .as_ref()
                .map_or_else(|| "-".to_owned(), ToString::to_string)
        ),
        other => format!("#{:<6} {time}  {}", rec.sequence, other.id()),
    }
}
