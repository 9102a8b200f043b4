//! The embedded default deploy target: a local git repository in the layout Argo CD and Flux
//! sync from. Each deployment writes `<env>/<app>/` (the rendered objects and a
//! `kustomization.yaml` naming them) and commits it — run id and digest in the message,
//! `Wharf-*` trailers a machine can read; a deployment of what is already there commits
//! nothing; a rollback is a revert commit; with a remote, every commit is pushed.
//!
//! Git is run as the `git` program (it is what the sync controllers read, and users have it).
//! Deployments to one repository are serialized with a lock file, so pipelines side by side
//! never race on git's index; one killed mid-write leaves no commit and is redone by the next.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde_json::Value;
use wharf_core::blocking::unblock;
use wharf_core::deploy::{
    Change, DeployRequest, DeployTarget, Deployment, Health, HealthState, Plan,
};
use wharf_core::{Error, ErrorKind, Result};

use crate::plan::diff;
use crate::render::{Manifest, SETTING_RUN_ID, Workload, render};

/// Trailer: the run that made the commit.
pub const TRAILER_RUN_ID: &str = "Wharf-Run-Id";
/// Trailer: the image deployed, by digest.
pub const TRAILER_IMAGE: &str = "Wharf-Image";
/// Trailer: the environment.
pub const TRAILER_ENVIRONMENT: &str = "Wharf-Environment";
/// Trailer on a rollback: the commit it reverts.
pub const TRAILER_ROLLBACK_OF: &str = "Wharf-Rollback-Of";

/// A GitOps repository as a [`DeployTarget`].
#[derive(Debug, Clone)]
pub struct GitOps {
    repo: PathBuf,
    workload: Workload,
    remote: Option<String>,
}

impl GitOps {
    /// The repository at `repo`, created (`git init`, branch `main`) when it does not exist.
    pub fn open(repo: impl Into<PathBuf>, workload: Workload) -> Result<Self> {
        let repo = repo.into();
        if !repo.join(".git").exists() {
            fs::create_dir_all(&repo).map_err(|e| {
                Error::new(
                    ErrorKind::Internal,
                    format!(
                        "cannot create the GitOps repository {}: {e}",
                        repo.display()
                    ),
                )
            })?;
            init(&repo)?;
        }
        Ok(Self {
            repo,
            workload,
            remote: None,
        })
    }

    /// Push every commit to `remote` (a name or URL git knows); a push that fails fails the
    /// deployment (the commit stays in the local repository).
    pub fn with_remote(mut self, remote: impl Into<String>) -> Self {
        self.remote = Some(remote.into());
        self
    }

    /// The repository's directory.
    pub fn repo(&self) -> &Path {
        &self.repo
    }

    /// `<env>/<app>`, relative to the repository.
    fn app_dir(request: &DeployRequest) -> String {
        format!("{}/{}", request.environment.as_str(), request.name)
    }

    /// The objects now in the repository for `request`'s application, by file.
    fn current(&self, dir: &str, manifests: &[Manifest]) -> Result<Vec<Option<Value>>> {
        manifests
            .iter()
            .map(|m| {
                let path = self.repo.join(dir).join(&m.file);
                match fs::read_to_string(&path) {
                    Ok(text) => serde_yaml::from_str::<Value>(&text).map(Some).map_err(|e| {
                        Error::invalid(format!(
                            "{} is not a YAML object ({e}): fix or remove it",
                            path.display()
                        ))
                    }),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(Error::new(
                        ErrorKind::Internal,
                        format!("cannot read {}: {e}", path.display()),
                    )),
                }
            })
            .collect()
    }

    fn plan_blocking(&self, request: &DeployRequest) -> Result<Plan> {
        let manifests = render(request, &self.workload)?;
        let dir = Self::app_dir(request);
        let current = self.current(&dir, &manifests)?;
        let changes: Vec<Change> = manifests
            .iter()
            .zip(&current)
            .flat_map(|(m, old)| diff(&m.object, old.as_ref(), &m.value))
            .collect();
        Ok(Plan::new(request.clone(), changes))
    }

    fn apply_blocking(&self, plan: &Plan) -> Result<Deployment> {
        let request = &plan.request;
        let manifests = render(request, &self.workload)?;
        let dir = Self::app_dir(request);
        let _lock = self.lock()?;
        let current = self.current(&dir, &manifests)?;
        let app = self.repo.join(&dir);
        fs::create_dir_all(&app).map_err(|e| write_error(&app, &e))?;
        for (m, old) in manifests.iter().zip(&current) {
            // Unchanged but for the run id: leave the file as it is.
            if diff(&m.object, old.as_ref(), &m.value).is_empty() {
                continue;
            }
            write_file(&app.join(&m.file), &to_yaml(&m.value)?)?;
        }
        let files: Vec<&str> = manifests.iter().map(|m| m.file.as_str()).collect();
        write_file(&app.join("kustomization.yaml"), &kustomization(&files))?;
        self.index_retry(|| git(&self.repo, &["add", "--", &dir]))?;
        let staged = !git_status(&self.repo, &["diff", "--cached", "--quiet", "--", &dir])?;
        if staged {
            let digest = request
                .image
                .digest()
                .map(ToString::to_string)
                .unwrap_or_default();
            let run = request
                .settings
                .get(SETTING_RUN_ID)
                .map_or("(none)", String::as_str);
            let message = format!(
                "deploy {} to {}: {digest}\n\nRun {run} deploys {}.\n\n{TRAILER_RUN_ID}: {run}\n{TRAILER_IMAGE}: {}\n{TRAILER_ENVIRONMENT}: {}\n",
                request.name,
                request.environment,
                request.image,
                request.image,
                request.environment,
            );
            self.index_retry(|| self.commit(&message, &dir))?;
            self.push()?;
        }
        let (revision, previous) = self.revisions(&dir)?;
        Ok(Deployment::new(request.name.clone(), revision, previous))
    }

    fn rollback_blocking(&self, deployment: &Deployment) -> Result<Deployment> {
        let previous = deployment.previous_revision.as_deref().ok_or_else(|| {
            Error::not_found(format!(
                "{} has no previous revision to roll back to: it was its first deployment",
                deployment.name
            ))
        })?;
        let _lock = self.lock()?;
        let reverted = &deployment.revision;
        if let Err(e) = git(&self.repo, &["revert", "--no-commit", reverted]) {
            let _ = git(&self.repo, &["revert", "--abort"]);
            return Err(Error::conflict(format!(
                "cannot revert {reverted} in {}: a later commit changed the same files ({e}); roll forward instead",
                self.repo.display()
            )));
        }
        let message = format!(
            "roll back {}: revert {}\n\nBack to {previous}.\n\n{TRAILER_ROLLBACK_OF}: {reverted}\n",
            deployment.name,
            short(reverted)
        );
        self.index_retry(|| self.commit(&message, "."))?;
        self.push()?;
        let head = git(&self.repo, &["rev-parse", "HEAD"])?;
        Ok(Deployment::new(
            deployment.name.clone(),
            head,
            Some(reverted.clone()),
        ))
    }

    fn status_blocking(&self, deployment: &Deployment) -> Result<Health> {
        let rev = format!("{}^{{commit}}", deployment.revision);
        if !git_status(&self.repo, &["cat-file", "-e", &rev])? {
            return Err(Error::not_found(format!(
                "revision {} of {} is not in {}",
                deployment.revision,
                deployment.name,
                self.repo.display()
            )));
        }
        // Under the lock, so another deployment's half-written files are not taken for ours;
        // untracked files never reach Argo CD or Flux, only changes to tracked ones matter.
        let _lock = self.lock()?;
        let dirty = git(
            &self.repo,
            &["status", "--porcelain", "--untracked-files=no"],
        )?;
        Ok(if dirty.is_empty() {
            Health::new(
                HealthState::Healthy,
                format!(
                    "committed as {} in {}; Argo CD or Flux apply it",
                    short(&deployment.revision),
                    self.repo.display()
                ),
            )
        } else {
            Health::new(
                HealthState::Unhealthy,
                format!(
                    "{} has uncommitted changes: {}",
                    self.repo.display(),
                    dirty.lines().next().unwrap_or_default()
                ),
            )
        })
    }

    /// The last commit that touched `dir`, and the one before it.
    fn revisions(&self, dir: &str) -> Result<(String, Option<String>)> {
        let log = git(&self.repo, &["log", "-n", "2", "--format=%H", "--", dir])?;
        let mut lines = log.lines().map(str::to_owned);
        let revision = lines.next().ok_or_else(|| {
            Error::internal(format!(
                "no commit touches {dir} in {}",
                self.repo.display()
            ))
        })?;
        Ok((revision, lines.next()))
    }

    fn commit(&self, message: &str, pathspec: &str) -> Result<()> {
        let mut cmd = git_command(&self.repo);
        // The user's identity when git has one; otherwise say it was wharf.
        if git(&self.repo, &["config", "user.email"]).is_err() {
            cmd.args(["-c", "user.name=wharf", "-c", "user.email=wharf@localhost"]);
        }
        cmd.args(["commit", "-q", "-F", "-", "--", pathspec]);
        run(cmd, Some(message), "git commit").map(drop)
    }

    fn push(&self) -> Result<()> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        git(&self.repo, &["push", "-q", remote, "HEAD"]).map_err(|e| {
            Error::new(
                ErrorKind::Transient,
                format!(
                    "committed in {} but the push to {remote} failed: {e}; push it by hand or run again",
                    self.repo.display()
                ),
            )
        })?;
        Ok(())
    }

    /// One deployment at a time per repository (processes side by side share it). Holding
    /// it, a git index lock can only be a short git command of someone else's, waited for, or
    /// one a killed deployment left: removed once it is five seconds old.
    fn lock(&self) -> Result<File> {
        let path = self.repo.join(".git").join("wharf-deploy.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| write_error(&path, &e))?;
        file.lock().map_err(|e| write_error(&path, &e))?;
        self.wait_for_index_lock();
        Ok(file)
    }

    /// Run a git command that writes the index; when it finds `index.lock` taken — a git
    /// still running for a deployer killed mid-command, which the kill did not reach — wait
    /// for that lock as [`lock`](Self::lock) does and run it again.
    fn index_retry<T>(&self, mut f: impl FnMut() -> Result<T>) -> Result<T> {
        let mut attempts = 0;
        loop {
            match f() {
                Err(e) if attempts < 3 && e.to_string().contains("index.lock") => {
                    attempts += 1;
                    self.wait_for_index_lock();
                }
                other => return other,
            }
        }
    }

    /// Wait until no git holds the index lock; one five seconds old is a dead git's, and
    /// removed.
    fn wait_for_index_lock(&self) {
        let index_lock = self.repo.join(".git").join("index.lock");
        while let Ok(meta) = fs::metadata(&index_lock) {
            let age = meta
                .modified()
                .ok()
                .and_then(|m| SystemTime::now().duration_since(m).ok())
                .unwrap_or_default();
            if age >= Duration::from_secs(5) {
                let _ = fs::remove_file(&index_lock);
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// `git init` into a scratch directory beside the repository and rename its `.git` into
/// place, so a process that sees `<repo>/.git` always sees a whole repository. Processes
/// creating it at once: one rename wins, and the others use the repository it made.
fn init(repo: &Path) -> Result<()> {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let full = fs::canonicalize(repo).map_err(|e| write_error(repo, &e))?;
    let name = full.file_name().unwrap_or_default().to_string_lossy();
    let scratch = full.with_file_name(format!(".{name}.wharf-init-{}-{nanos}", std::process::id()));
    fs::create_dir_all(&scratch).map_err(|e| write_error(&scratch, &e))?;
    let made = git(&scratch, &["init", "-q", "-b", "main"]).and_then(|_| {
        match fs::rename(scratch.join(".git"), repo.join(".git")) {
            Ok(()) => Ok(()),
            Err(_) if repo.join(".git").join("HEAD").is_file() => Ok(()),
            Err(e) => Err(write_error(&repo.join(".git"), &e)),
        }
    });
    let _ = fs::remove_dir_all(&scratch);
    made
}

#[async_trait]
impl DeployTarget for GitOps {
    fn name(&self) -> &str {
        "gitops"
    }

    async fn plan(&self, request: &DeployRequest) -> Result<Plan> {
        let (this, request) = (self.clone(), request.clone());
        unblock(move || this.plan_blocking(&request)).await
    }

    async fn apply(&self, plan: &Plan) -> Result<Deployment> {
        let (this, plan) = (self.clone(), plan.clone());
        unblock(move || this.apply_blocking(&plan)).await
    }

    async fn status(&self, deployment: &Deployment) -> Result<Health> {
        let (this, d) = (self.clone(), deployment.clone());
        unblock(move || this.status_blocking(&d)).await
    }

    async fn rollback(&self, deployment: &Deployment) -> Result<Deployment> {
        let (this, d) = (self.clone(), deployment.clone());
        unblock(move || this.rollback_blocking(&d)).await
    }
}

fn kustomization(files: &[&str]) -> String {
    let mut out = String::from(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n",
    );
    for f in files {
        out.push_str(&format!("- {f}\n"));
    }
    out
}

fn to_yaml(v: &Value) -> Result<String> {
    serde_yaml::to_string(v)
        .map_err(|e| Error::internal(format!("cannot write a manifest as YAML: {e}")))
}

/// Write `path` whole or not at all (a temporary file renamed over it).
fn write_file(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    fs::write(&tmp, text).map_err(|e| write_error(&tmp, &e))?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        write_error(path, &e)
    })
}

fn write_error(path: &Path, e: &std::io::Error) -> Error {
    Error::new(
        ErrorKind::Internal,
        format!("cannot write {}: {e}", path.display()),
    )
}

fn short(rev: &str) -> &str {
    rev.get(..12).unwrap_or(rev)
}

/// git that never prompts, and whose read-only commands (`status`, `diff`) take no optional
/// index lock: only deployments, one at a time under [`GitOps::lock`], write the index, so a
/// health check beside a deployment cannot make its `git add` fail on `index.lock`.
fn git_command(repo: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(repo)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_OPTIONAL_LOCKS", "0");
    cmd
}

/// Run git; its trimmed stdout, or an error with the command and git's first line of stderr.
fn git(repo: &Path, args: &[&str]) -> Result<String> {
    let mut cmd = git_command(repo);
    cmd.args(args);
    run(cmd, None, &format!("git {}", args.join(" ")))
}

/// Whether git exits 0 (`diff --quiet`, `cat-file -e`); an error only when it cannot run.
fn git_status(repo: &Path, args: &[&str]) -> Result<bool> {
    let status = git_command(repo)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| no_git(&e))?;
    Ok(status.success())
}

fn run(mut cmd: Command, stdin: Option<&str>, what: &str) -> Result<String> {
    use std::io::Write as _;
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| no_git(&e))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|e| Error::internal(format!("{what}: writing its input: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::internal(format!("{what}: {e}")))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(Error::new(
        ErrorKind::Internal,
        format!(
            "`{what}` failed: {}",
            stderr
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no output")
        ),
    ))
}

fn no_git(e: &std::io::Error) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        format!("cannot run git ({e}): the GitOps deploy target needs git on PATH"),
    )
}
