//! [`OsvScanner`]: the embedded default [`Scanner`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use wharf_core::scan::ScanOptions;
use wharf_core::{Registry, ScanReport, ScanTarget, Scanner};

use crate::image;
use crate::osv::OsvDatabase;

/// Inventories the image's layers and matches them against a local OSV database — offline,
/// in process, no daemon. The database loads once, on first scan.
pub struct OsvScanner {
    db_path: PathBuf,
    db: OnceLock<Arc<OsvDatabase>>,
    registry: Option<Arc<dyn Registry>>,
}

impl std::fmt::Debug for OsvScanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OsvScanner")
            .field("db", &self.db_path)
            .finish_non_exhaustive()
    }
}

impl OsvScanner {
    /// A scanner over the OSV database at `db` (a directory of records, or an export's ZIP).
    pub fn new(db: impl Into<PathBuf>) -> Self {
        Self {
            db_path: db.into(),
            db: OnceLock::new(),
            registry: None,
        }
    }

    /// A scanner over a database already loaded.
    pub fn with_database(db: Arc<OsvDatabase>) -> Self {
        let path = db.info().source.clone().unwrap_or_default();
        let cell = OnceLock::new();
        let _ = cell.set(db);
        Self {
            db_path: PathBuf::from(path),
            db: cell,
            registry: None,
        }
    }

    /// Read registry images ([`ScanTarget::Image`]) through `registry`.
    pub fn with_registry(mut self, registry: Arc<dyn Registry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// The database path.
    pub fn database_path(&self) -> &Path {
        &self.db_path
    }

    async fn database(&self) -> crate::Result<Arc<OsvDatabase>> {
        if let Some(db) = self.db.get() {
            return Ok(db.clone());
        }
        let path = self.db_path.clone();
        let db = wharf_core::blocking::unblock(move || OsvDatabase::open(&path)).await?;
        Ok(self.db.get_or_init(|| Arc::new(db)).clone())
    }
}

#[async_trait]
impl Scanner for OsvScanner {
    fn name(&self) -> &str {
        "osv"
    }

    async fn scan(
        &self,
        target: &ScanTarget,
        _opts: &ScanOptions,
    ) -> wharf_core::Result<ScanReport> {
        // The database loads while the layers are read.
        let (db, inventory) = futures::future::join(
            self.database(),
            image::inventory(target, self.registry.as_ref()),
        )
        .await;
        let (db, inventory) = (db?, inventory?);
        let (mut findings, mut notes) = {
            let db = db.clone();
            let packages = inventory.packages.clone();
            wharf_core::blocking::unblock(move || db.match_packages(&packages)).await
        };
        let now = crate::now_rfc3339();
        for f in &mut findings {
            f.first_seen = Some(now.clone());
        }
        let mut report = ScanReport::new("osv", findings).with_artifact(target.digest().clone());
        report.scanner_version = Some(format!("wharf-scan {}", env!("CARGO_PKG_VERSION")));
        report.scanned_at = Some(now);
        report.database = Some(db.info().clone());
        report.packages = inventory.packages;
        notes.extend(inventory.notes);
        notes.extend(db.problems().iter().take(20).cloned());
        if db.problems().len() > 20 {
            notes.push(format!(
                "… and {} more unusable ranges in the database",
                db.problems().len() - 20
            ));
        }
        report.notes = notes;
        if report.packages.is_empty() {
            report.notes.push(
                "no packages found in the image's layers (no dpkg, apk or Python metadata, no pinned requirements)".into(),
            );
        }
        Ok(report)
    }
}
