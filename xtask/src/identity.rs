//! `cargo xtask identity whoami`: the token source this environment has, what its token
//! says, and what each exchange `[identity]` configures returns — the first thing to run
//! when CI says "access denied".

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use wharf_core::identity::CredentialOptions;
use wharf_core::{CloudCredentials, Credentials};
use wharf_identity::diagnose::rfc3339;
use wharf_pipeline::Config;

/// Inspect the run's OIDC identity.
#[derive(clap::Args, Debug)]
pub(crate) struct IdentityCmd {
    #[command(subcommand)]
    command: IdentitySub,
}

#[derive(clap::Subcommand, Debug)]
enum IdentitySub {
    /// Print the detected token source, the token's claims, and each configured exchange's
    /// principal and expiry (exit 1 when an exchange fails).
    Whoami {
        /// The project config (default: examples/wharf.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The Azure scope to ask for (default: Azure Resource Manager's).
        #[arg(
            long,
            value_name = "SCOPE",
            default_value = "https://management.azure.com/.default"
        )]
        azure_scope: String,
    },
}

impl IdentityCmd {
    pub(crate) fn run(&self) -> ExitCode {
        match self.execute() {
            Ok(code) => ExitCode::from(code),
            Err(err) => {
                eprintln!("error: {}", crate::pipeline::one_line(&err));
                ExitCode::from(crate::pipeline::exit::INVALID)
            }
        }
    }

    fn execute(&self) -> anyhow::Result<u8> {
        let IdentitySub::Whoami {
            config,
            azure_scope,
        } = &self.command;
        let path = config
            .clone()
            .unwrap_or_else(|| crate::project_root().join("examples/wharf.toml"));
        let config = Config::load(&path)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let identity = runtime.block_on(config.identity())?;
        let field = |name: &str, value: &str| println!("{name:<10} {value}");
        match &identity.source {
            Some(s) => field("source", &s.description),
            None => field(
                "source",
                "none: no OIDC token here; runs are recorded as the local user",
            ),
        }
        for hint in &identity.hints {
            field("hint", hint);
        }
        if let Some(token) = &identity.token {
            let claims = wharf_identity::jwt::decode(token.token.expose(), "the token")?;
            let left = (token.expires_at - time::OffsetDateTime::now_utc()).whole_minutes();
            field(
                "expires",
                &format!("{} (in {left} min)", rfc3339(token.expires_at)),
            );
            field("actor", &token.actor().to_string());
            // Decoded for the reader; the cloud that accepts the token checks its signature.
            println!("claims     (decoded, not verified: the cloud checks the signature)");
            for (name, value) in claims.all() {
                let shown = match value {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                println!("  {name:<22} {shown}");
            }
        }
        let mut failed = false;
        let mut show = |cloud: &str, what: String, got: wharf_core::Result<Credentials>| match got {
            Ok(c) => field(
                cloud,
                &format!(
                    "{what} -> {} until {}",
                    c.identity.as_deref().unwrap_or(&c.principal),
                    rfc3339(c.expires_at)
                ),
            ),
            Err(e) => {
                failed = true;
                field(
                    cloud,
                    &format!("{what} -> error: {}", wharf_core::display_chain(&e)),
                );
            }
        };
        let mut any = false;
        if let Some(aws) = &identity.aws {
            any = true;
            let got = runtime.block_on(aws.credentials(&CredentialOptions::default()));
            show("aws", format!("role {}", aws.role_arn()), got);
        }
        if let Some(azure) = &identity.azure {
            any = true;
            let got =
                runtime.block_on(azure.credentials(&CredentialOptions::for_scope(azure_scope)));
            show("azure", format!("scope {azure_scope}"), got);
        }
        if let Some(gcp) = &identity.gcp {
            any = true;
            let got = runtime.block_on(gcp.credentials(&CredentialOptions::default()));
            show(
                "gcp",
                "scope https://www.googleapis.com/auth/cloud-platform".to_owned(),
                got,
            );
        }
        if !any {
            field(
                "exchanges",
                "none configured ([identity.aws], [identity.azure], [identity.gcp] in wharf.toml)",
            );
        }
        Ok(if failed { 1 } else { 0 })
    }
}
