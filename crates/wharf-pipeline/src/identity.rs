//! `[identity]`: the run's OIDC token source, the actor it names, and the exchanges every
//! cloud call of the standard pipeline uses — resolved once per [`Config`]. Without the
//! `identity` feature there is no token source and runs are the local user's; an
//! `[identity]` that asks for more is refused, naming the feature.

use std::fmt;
use std::sync::Arc;

use wharf_core::{Actor, Error, ErrorKind, IdToken, IdTokenSource};
#[cfg(feature = "identity")]
use wharf_identity::source::{self, Detected, Env};

use crate::standard::setup;
use crate::{Config, PipelineError};

/// What `[identity]` and this environment give a run.
#[non_exhaustive]
pub struct Identity {
    /// The token source, when there is one.
    #[cfg(feature = "identity")]
    pub source: Option<Detected>,
    /// A token read from it when the identity was resolved, for the actor (its claims; the
    /// token itself is a secret and is never recorded).
    pub token: Option<IdToken>,
    /// What a person should know: a GitHub job without `id-token: write`, a token that
    /// could not be read for the actor.
    pub hints: Vec<String>,
    /// `[identity.aws]`: the role every AWS client assumes.
    #[cfg(feature = "aws-identity")]
    pub aws: Option<Arc<wharf_identity::aws::AwsWebIdentity>>,
    /// `[identity.azure]`: Entra access tokens (AKS).
    #[cfg(feature = "identity")]
    pub azure: Option<Arc<wharf_identity::azure::AzureWorkloadIdentity>>,
    /// `[identity.gcp]`: Google access tokens (GKE).
    #[cfg(feature = "identity")]
    pub gcp: Option<Arc<wharf_identity::gcp::GcpWorkloadIdentity>>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Identity");
        d.field("token", &self.token).field("hints", &self.hints);
        #[cfg(feature = "identity")]
        d.field("source", &self.source.as_ref().map(|s| &s.description))
            .field("azure", &self.azure)
            .field("gcp", &self.gcp);
        #[cfg(feature = "aws-identity")]
        d.field("aws", &self.aws);
        d.finish()
    }
}

impl Identity {
    /// The actor the token names (subject, issuer, run context), or `None` without a token.
    pub fn actor(&self) -> Option<Actor> {
        self.token.as_ref().map(IdToken::actor)
    }

    /// The token source, for what asks it for tokens of its own (keyless signing).
    pub fn token_source(&self) -> Option<Arc<dyn IdTokenSource>> {
        #[cfg(feature = "identity")]
        return self.source.as_ref().map(|d| d.source.clone());
        #[cfg(not(feature = "identity"))]
        None
    }

    /// Without the `identity` feature: no token source; an `[identity]` that names one or
    /// an exchange is refused.
    #[cfg(not(feature = "identity"))]
    pub async fn resolve(config: &Config) -> Result<Self, PipelineError> {
        let c = &config.identity;
        let wants = !matches!(c.source.as_deref(), None | Some("auto") | Some("none"))
            || c.aws.is_some()
            || c.azure.is_some()
            || c.gcp.is_some();
        if wants {
            return Err(setup(
                "[identity]",
                Error::new(
                    ErrorKind::Unsupported,
                    "OIDC token sources and exchanges need wharf-pipeline's `identity` feature (cargo xtask pipeline has it)",
                ),
            ));
        }
        Ok(Self {
            token: None,
            hints: Vec::new(),
        })
    }

    /// Resolve `config`'s `[identity]` in `env`: detect or open the token source, read a
    /// token for the actor, and set up each configured exchange.
    #[cfg(feature = "identity")]
    pub async fn resolve(config: &Config, env: &Env) -> Result<Self, PipelineError> {
        let c = &config.identity;
        let source = match c.source.as_deref() {
            None | Some("auto") => {
                source::detect(env).map_err(|e| setup("[identity] source", e))?
            }
            Some("none") => None,
            Some(kind) => Some(
                source::pinned(
                    kind,
                    c.token_file
                        .as_deref()
                        .map(|p| config.resolve(p))
                        .as_deref(),
                    c.token_env.as_deref(),
                    env,
                )
                .map_err(|e| setup(format!("[identity] source = {kind:?}"), e))?,
            ),
        };
        let mut hints = source::hints(env);
        let exchanges = c.aws.is_some() || c.azure.is_some() || c.gcp.is_some();
        let Some(found) = &source else {
            if exchanges {
                return Err(setup(
                    "[identity]",
                    Error::new(
                        ErrorKind::Unauthenticated,
                        "an exchange is configured but this environment has no OIDC ID token: run in GitHub Actions with `permissions: id-token: write`, GitLab CI with `id_tokens`, a pod with a projected token, or set [identity] source",
                    ),
                ));
            }
            return Ok(Self::without_token(hints));
        };
        // The actor's token: for the first exchange's audience (so the exchange reuses it),
        // else any audience the source gives.
        let audience = c
            .aws
            .as_ref()
            .map(|a| {
                a.audience
                    .clone()
                    .unwrap_or_else(|| "sts.amazonaws.com".to_owned())
            })
            .or_else(|| {
                c.azure.as_ref().map(|a| {
                    a.audience.clone().unwrap_or_else(|| {
                        wharf_identity::azure::TOKEN_EXCHANGE_AUDIENCE.to_owned()
                    })
                })
            })
            .unwrap_or_default();
        let token = match found.source.id_token(&audience).await {
            Ok(t) => Some(t),
            Err(e) if exchanges => {
                return Err(setup(format!("[identity] {}", found.description), e));
            }
            Err(e) => {
                hints.push(format!(
                    "no actor from the OIDC token ({}): {e}",
                    found.description
                ));
                None
            }
        };
        let mut me = Self {
            source: source.clone(),
            token,
            hints,
            #[cfg(feature = "aws-identity")]
            aws: None,
            azure: None,
            gcp: None,
        };
        if let Some(a) = &c.aws {
            me.set_aws(config, a, env, found)?;
        }
        if let Some(a) = &c.azure {
            let mut azure = wharf_identity::azure::AzureWorkloadIdentity::from_env(
                found.source.clone(),
                a.tenant_id.as_deref(),
                a.client_id.as_deref(),
                env,
            )
            .map_err(|e| setup("[identity.azure]", e))?;
            if let Some(h) = &a.authority_host {
                azure = azure.authority_host(h);
            }
            if let Some(aud) = &a.audience {
                azure = azure.audience(aud);
            }
            me.azure = Some(Arc::new(azure));
        }
        if let Some(g) = &c.gcp {
            let mut gcp =
                wharf_identity::gcp::GcpWorkloadIdentity::new(found.source.clone(), &g.provider)
                    .map_err(|e| setup("[identity.gcp] provider", e))?;
            if let Some(sa) = &g.service_account {
                gcp = gcp.service_account(sa);
            }
            if let Some(aud) = &g.token_audience {
                gcp = gcp.audience(aud);
            }
            if g.sts_url.is_some() || g.iam_url.is_some() {
                gcp = gcp.endpoints(
                    g.sts_url.as_deref().unwrap_or(wharf_identity::gcp::STS_URL),
                    g.iam_url
                        .as_deref()
                        .unwrap_or(wharf_identity::gcp::IAM_CREDENTIALS_URL),
                );
            }
            me.gcp = Some(Arc::new(gcp));
        }
        Ok(me)
    }

    #[cfg(feature = "identity")]
    fn without_token(hints: Vec<String>) -> Self {
        Self {
            source: None,
            token: None,
            hints,
            #[cfg(feature = "aws-identity")]
            aws: None,
            azure: None,
            gcp: None,
        }
    }

    /// The session name: `[identity.aws] session_name`, else `wharf-<run id>[-<attempt>]`
    /// from the token, else `wharf-<project>`.
    #[cfg(feature = "aws-identity")]
    fn session_name(&self, config: &Config, configured: Option<&str>) -> String {
        if let Some(name) = configured {
            return name.to_owned();
        }
        let ctx = self.token.as_ref().map(|t| &t.context);
        match ctx.and_then(|c| c.get("run_id")) {
            Some(run) => match ctx.and_then(|c| c.get("run_attempt")) {
                Some(attempt) => format!("wharf-{run}-{attempt}"),
                None => format!("wharf-{run}"),
            },
            None => format!("wharf-{}", config.project.name),
        }
    }

    #[cfg(feature = "aws-identity")]
    fn set_aws(
        &mut self,
        config: &Config,
        a: &crate::config::AwsIdentityConfig,
        env: &Env,
        found: &Detected,
    ) -> Result<(), PipelineError> {
        let mut b = wharf_identity::aws::AwsWebIdentity::builder(found.source.clone(), &a.role_arn)
            .session_name(self.session_name(config, a.session_name.as_deref()))
            .fips(a.fips.unwrap_or(false));
        if let Some(region) = a
            .region
            .as_deref()
            .or_else(|| env.get("AWS_REGION"))
            .or_else(|| env.get("AWS_DEFAULT_REGION"))
        {
            b = b.region(region);
        }
        if let Some(url) = a
            .endpoint_url
            .as_deref()
            .or_else(|| env.get("AWS_ENDPOINT_URL_STS"))
            .or_else(|| env.get("AWS_ENDPOINT_URL"))
        {
            b = b.endpoint_url(url);
        }
        if let Some(aud) = &a.audience {
            b = b.audience(aud);
        }
        if let Some(secs) = a.duration_seconds {
            b = b.duration(std::time::Duration::from_secs(secs));
        }
        let aws = b.build().map_err(|e| setup("[identity.aws] role_arn", e))?;
        self.aws = Some(Arc::new(aws));
        Ok(())
    }

    #[cfg(all(feature = "identity", not(feature = "aws-identity")))]
    fn set_aws(
        &mut self,
        _config: &Config,
        _a: &crate::config::AwsIdentityConfig,
        _env: &Env,
        _found: &Detected,
    ) -> Result<(), PipelineError> {
        Err(setup(
            "[identity.aws]",
            Error::new(
                ErrorKind::Unsupported,
                "AWS role assumption needs one of wharf-pipeline's AWS features (ecr, kms, s3, eks)",
            ),
        ))
    }
}

/// [`Identity`] resolved at most once per config (clones share it).
#[derive(Clone, Default)]
pub(crate) struct IdentityCell(Arc<tokio::sync::OnceCell<Arc<Identity>>>);

impl fmt::Debug for IdentityCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdentityCell")
    }
}

/// The resolved identity is a cache, not configuration: configs compare by what they say.
impl PartialEq for IdentityCell {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Config {
    /// What `[identity]` resolves to in this process's environment: resolved on first use,
    /// then shared by every client made from this config.
    pub async fn identity(&self) -> Result<Arc<Identity>, PipelineError> {
        self.resolved_identity
            .0
            .get_or_try_init(|| async {
                #[cfg(feature = "identity")]
                let resolved = Identity::resolve(self, &Env::process()).await;
                #[cfg(not(feature = "identity"))]
                let resolved = Identity::resolve(self).await;
                resolved.map(Arc::new)
            })
            .await
            .cloned()
    }

    /// The AWS SDK's configuration for `region` (default: the environment's), with the
    /// `[identity.aws]` role as its credentials when configured, else the SDK's default
    /// chain.
    #[cfg(feature = "aws-identity")]
    pub async fn aws_sdk_config(
        &self,
        region: Option<&str>,
    ) -> Result<aws_config::SdkConfig, PipelineError> {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(r) = region {
            loader = loader.region(aws_config::Region::new(r.to_owned()));
        }
        if let Some(aws) = &self.identity().await?.aws {
            loader = loader.credentials_provider(aws.provider());
        }
        Ok(loader.load().await)
    }
}
