//! The Sigstore mock: Fulcio with a CT log, and Rekor v1, on one loopback port
//! (`sigstore_mock.js` on npm's `@sigstore/mock`, run with `node`).

use std::ffi::OsString;

use super::Launch;

/// A local Sigstore (Fulcio with a CT log, and Rekor v1) on one loopback port: a Node script
/// built on `@sigstore/mock`, run with `node`; its routes are listed at its top.
pub(super) const SIGSTORE_MOCK_JS: &str = include_str!("sigstore_mock.js");

/// Arguments of the Sigstore mock (after its script, `sigstore_mock.js` in the work dir):
/// listen on `127.0.0.1:port`.
pub(super) fn sigstore_mock_args(launch: &Launch<'_>) -> anyhow::Result<Vec<OsString>> {
    Ok(vec!["--port".into(), launch.port.to_string().into()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::process::loopback;
    use crate::backends::tests::{ctx_in, temp_dir};
    use crate::backends::{BACKENDS, Kind, State};
    use std::fs;

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
}
