//! `cargo xtask osv refresh`: renew a project's OSV snapshot (`[scan] osv_db`, the example's
//! `examples/osv`) from full OSV exports, keeping every advisory that names a package the
//! model pins (its requirements and lock files).

use std::path::PathBuf;

use anyhow::{Context, bail};

/// OSV snapshot chores.
#[derive(clap::Args, Debug)]
pub(crate) struct OsvCmd {
    #[command(subcommand)]
    action: OsvAction,
}

#[derive(clap::Subcommand, Debug)]
enum OsvAction {
    /// Keep every advisory from the exports that names a package the model pins.
    Refresh {
        /// An OSV export: a per-ecosystem `all.zip`
        /// (<https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip>) or a
        /// directory of records; repeat for several ecosystems.
        #[arg(long = "export", required = true)]
        exports: Vec<PathBuf>,
        /// The project's wharf.toml (default: the example's).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

impl OsvCmd {
    pub(crate) fn run(&self) -> anyhow::Result<()> {
        let OsvAction::Refresh { exports, config } = &self.action;
        let config_path = config
            .clone()
            .unwrap_or_else(|| crate::project_root().join("examples/wharf.toml"));
        let config = wharf_pipeline::Config::load(&config_path)?;
        let out = config.resolve(
            config
                .scan
                .osv_db
                .as_deref()
                .unwrap_or(std::path::Path::new(wharf_pipeline::DEFAULT_OSV_DB)),
        );
        let model = config.resolve(&config.model.dir);
        let mut packages = Vec::new();
        for entry in
            std::fs::read_dir(&model).with_context(|| format!("reading {}", model.display()))?
        {
            let path = entry?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            match wharf_scan::inventory::pinned_packages(&name, &text) {
                Some(Ok(p)) => packages.extend(p),
                Some(Err(e)) => bail!("{}: {e}", path.display()),
                None => {}
            }
        }
        if packages.is_empty() {
            bail!(
                "{} pins no packages (no requirements*.txt, poetry.lock or uv.lock): nothing to refresh",
                model.display()
            );
        }
        let n = wharf_scan::osv::extract(exports, &packages, &out)?;
        let names: Vec<String> = packages
            .iter()
            .map(|p| format!("{}=={}", p.name, p.version))
            .collect();
        println!(
            "{n} advisories for {} written to {} (README.md and other files kept)",
            names.join(", "),
            out.display()
        );
        Ok(())
    }
}
