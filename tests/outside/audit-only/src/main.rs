//! The audit log alone: append a run and an approval, append the run again (the same
//! receipt), verify the chain and find the run — with no async runtime at all.

use wharf_audit::{
    Actor, AppendOptions, AuditEvent, AuditLog, Environment, EventRecord, FileAuditLog, Query,
    RunOutcome, RunRecord, VerifyRange,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: outside-audit-only DIR")?;
    futures::executor::block_on(async {
        let log = FileAuditLog::open(&dir)?;
        let run = AuditEvent::Run(
            RunRecord::builder("run-1", "fraud-detector", Environment::Prod, Actor::local("ci"))
                .source_commit("3f2a9c1")
                .outcome(RunOutcome::Passed)
                .build(),
        );
        let first = log.append(&run, &AppendOptions::default()).await?;
        let again = log.append(&run, &AppendOptions::default()).await?;
        if again.sequence != first.sequence {
            return Err("the same run was recorded twice".into());
        }
        let approval = EventRecord::new("approval-1", "approval", Actor::local("qa-lead"))
            .environment(Environment::Prod)
            .data(serde_json::json!({"ticket": "CHG-1042"}));
        log.append(&AuditEvent::Event(approval), &AppendOptions::default())
            .await?;
        let report = log.verify_with(&VerifyRange::all(), None).await?;
        if !report.is_intact() {
            return Err(format!("{report}").into());
        }
        let found = log.query(&Query::default().run_id("run-1")).await?;
        println!(
            "audit-only: {} records, chain intact, run-1 is record #{}",
            report.checked, found[0].sequence
        );
        Ok(())
    })
}
