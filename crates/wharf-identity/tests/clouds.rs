//! Azure Entra workload identity and Google workload identity federation against loopback
//! stand-ins (no local binary plays either), answering as the services do:
//! - Entra: the client-credentials grant with a federated assertion (Microsoft identity
//!   platform "client credentials flow" doc; azure-sdk-for-python `aad_client_base.py` and
//!   azure-sdk-for-rust `client_assertion_credential.rs` for the five form fields); errors in
//!   the shape of the AADSTS error-code reference, AADSTS700213 answered 401 `invalid_client`
//!   as reported in Azure/login#482 and Azure/azure-workload-identity#616.
//! - Google: STS `v1/token` form fields from google-auth-library-python `google/oauth2/sts.py`,
//!   its answer per `ExchangeTokenResponse`; IAM Credentials `generateAccessToken` from
//!   `impersonated_credentials.py` (`scope` list, `lifetime` "3600s"; `expireTime` without
//!   fractions); the errors as quoted in google-github-actions/auth issues #60 and #211.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use serde_json::{Value, json};
use support::{CANARY, ManualClock, Seen, closed_port, github_claims, serve, signed_jwt, t0};
use wharf_core::identity::CredentialOptions;
use wharf_core::{CloudCredentials, ErrorKind, IdTokenSource, Secret};
use wharf_identity::azure::AzureWorkloadIdentity;
use wharf_identity::gcp::GcpWorkloadIdentity;
use wharf_identity::source::{Env, TokenVar};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "0b1f6471-1bf0-4dda-aec3-cb9272f09590";
const ARM: &str = "https://management.azure.com/.default";
const PROVIDER: &str = "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/github/providers/gh";
const GCP_AUD: &str = "https://iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/github/providers/gh";
const SA: &str = "wharf@models-prod.iam.gserviceaccount.com";

fn token(aud: &str, clock: &Arc<ManualClock>) -> Arc<dyn IdTokenSource> {
    Arc::new(
        TokenVar::new("T", Secret::new(signed_jwt(&github_claims(aud)))).with_clock(clock.clone()),
    )
}

fn entra_error(status: u16, error: &'static str, code: u32, description: &str) -> support::Answer {
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {description} Trace ID: 4ef9c26a-e731-4572-b4d3-f8c0e6362200 Correlation ID: 731cf9a5-5359-45d2-b058-4f8f2570e1fc Timestamp: 2026-12-06 10:00:00Z"),
        "error_codes": [code],
        "timestamp": "2026-12-06 10:00:00Z",
        "trace_id": "4ef9c26a-e731-4572-b4d3-f8c0e6362200",
        "correlation_id": "731cf9a5-5359-45d2-b058-4f8f2570e1fc",
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}")
    });
    (status, "application/json; charset=utf-8", body.to_string())
}

#[tokio::test]
async fn entra_access_tokens_per_scope_from_a_federated_assertion() {
    let (url, seen) = serve(|req: &Seen| {
        let scope = req.form("scope").unwrap();
        (
            200,
            "application/json; charset=utf-8",
            json!({"token_type": "Bearer", "expires_in": 3599,
            "ext_expires_in": 3599, "access_token": format!("eyJ0eXAi.{scope}.{CANARY}")})
            .to_string(),
        )
    });
    let clock = ManualClock::at(t0());
    let env: Env = [
        ("AZURE_TENANT_ID", TENANT),
        ("AZURE_CLIENT_ID", CLIENT),
        ("AZURE_AUTHORITY_HOST", url.as_str()),
    ]
    .into_iter()
    .collect();
    let azure = AzureWorkloadIdentity::from_env(
        token("api://AzureADTokenExchange", &clock),
        None,
        None,
        &env,
    )
    .unwrap()
    .with_clock(clock.clone());
    let c = azure
        .credentials(&CredentialOptions::for_scope(ARM))
        .await
        .unwrap();
    assert_eq!(
        (c.provider.as_str(), c.principal.as_str()),
        ("azure", CLIENT)
    );
    assert_eq!(c.secret.expose(), format!("eyJ0eXAi.{ARM}.{CANARY}"));
    assert_eq!(c.expires_at, t0() + time::Duration::seconds(3599));
    {
        let seen = seen.lock().unwrap();
        let req = &seen[0];
        assert_eq!(
            (req.method.as_str(), req.target.as_str()),
            ("POST", format!("/{TENANT}/oauth2/v2.0/token").as_str())
        );
        assert_eq!(
            req.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(req.form("client_id").as_deref(), Some(CLIENT));
        assert_eq!(
            req.form("grant_type").as_deref(),
            Some("client_credentials")
        );
        assert_eq!(
            req.form("client_assertion_type").as_deref(),
            Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        );
        assert!(req.form("client_assertion").unwrap().ends_with(CANARY));
    }
    azure
        .credentials(&CredentialOptions::for_scope(ARM))
        .await
        .unwrap();
    azure
        .credentials(&CredentialOptions::for_scope(
            "6dae42f8-4368-4678-94ff-3960e28e3630/.default",
        ))
        .await
        .unwrap();
    assert_eq!(seen.lock().unwrap().len(), 2, "one request per scope");
    clock.advance(time::Duration::minutes(56));
    azure
        .credentials(&CredentialOptions::for_scope(ARM))
        .await
        .unwrap();
    assert_eq!(seen.lock().unwrap().len(), 3, "renewed with 4 minutes left");
    assert!(!format!("{azure:?} {c:?}").contains(CANARY));
}

#[tokio::test]
async fn entra_refusals_say_which_federated_credential_to_fix() {
    let clock = ManualClock::at(t0());
    let cases: Vec<(support::Answer, &str, ErrorKind)> = vec![
        (
            entra_error(
                401,
                "invalid_client",
                700_213,
                "No matching federated identity record found for presented assertion subject 'repo:Acme/models:environment:prod'. Check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation",
            ),
            r#"application 0b1f6471-1bf0-4dda-aec3-cb9272f09590 needs a federated identity credential with issuer "https://token.actions.githubusercontent.com", subject "repo:Acme/models:environment:prod" (exact match) and audience "api://AzureADTokenExchange""#,
            ErrorKind::Unauthenticated,
        ),
        (
            entra_error(
                401,
                "invalid_client",
                700_212,
                "No matching federated identity record found for presented assertion audience 'api://AzureADTokenExchange'.",
            ),
            "the federated credential's audience must be",
            ErrorKind::Unauthenticated,
        ),
        (
            entra_error(
                400,
                "unauthorized_client",
                700_016,
                "Application with identifier '0b1f6471-1bf0-4dda-aec3-cb9272f09590' was not found in the directory 'Acme'.",
            ),
            "check [identity.azure] client_id (AZURE_CLIENT_ID)",
            ErrorKind::NotFound,
        ),
        (
            entra_error(
                400,
                "invalid_request",
                90_002,
                "Tenant '72f988bf-86f1-41af-91ab-2d7cd011db47' not found.",
            ),
            "check [identity.azure] tenant_id",
            ErrorKind::NotFound,
        ),
    ];
    for (answer, want, kind) in cases {
        let (url, _) = serve(move |_| answer.clone());
        let azure =
            AzureWorkloadIdentity::new(token("api://AzureADTokenExchange", &clock), TENANT, CLIENT)
                .authority_host(url)
                .with_clock(clock.clone());
        let e = azure
            .credentials(&CredentialOptions::for_scope(ARM))
            .await
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with(
                "Entra refused a token for https://management.azure.com/.default (HTTP"
            ),
            "{msg}"
        );
        assert!(msg.contains(want), "{want:?} not in {msg}");
        assert!(
            !msg.contains('\n') && !msg.contains(CANARY) && !msg.contains("Trace ID"),
            "{msg}"
        );
        assert_eq!(e.kind(), kind, "{msg}");
    }

    let azure = AzureWorkloadIdentity::new(token("sts.amazonaws.com", &clock), TENANT, CLIENT)
        .authority_host(closed_port());
    let e = azure
        .credentials(&CredentialOptions::for_scope(ARM))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("not \"api://AzureADTokenExchange\""),
        "{e}"
    );
    let e = azure
        .credentials(&CredentialOptions::default())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("per scope"), "{e}");
    let e =
        AzureWorkloadIdentity::from_env(token("x", &clock), None, Some(CLIENT), &Env::default())
            .unwrap_err();
    assert!(
        e.to_string()
            .contains("set [identity.azure] tenant_id or AZURE_TENANT_ID"),
        "{e}"
    );
}

/// Google STS, then IAM Credentials: each asked as google-auth-library asks.
fn google(iam_status: u16) -> (String, Arc<std::sync::Mutex<Vec<Seen>>>) {
    serve(move |req: &Seen| {
        if req.target == "/v1/token" {
            return (
                200,
                "application/json; charset=UTF-8",
                json!({
                "access_token": format!("ya29.federated-{CANARY}"),
                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "token_type": "Bearer", "expires_in": 3599})
                .to_string(),
            );
        }
        if iam_status == 200 {
            (200, "application/json; charset=UTF-8", json!({"accessToken": format!("ya29.sa-{CANARY}"), "expireTime": "2026-12-06T11:00:00Z"}).to_string())
        } else {
            (iam_status, "application/json; charset=UTF-8", json!({"error": {"code": 403,
                "message": "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
                "status": "PERMISSION_DENIED",
                "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "IAM_PERMISSION_DENIED",
                    "domain": "iam.googleapis.com", "metadata": {"permission": "iam.serviceAccounts.getAccessToken"}}]}}).to_string())
        }
    })
}

#[tokio::test]
async fn google_federation_then_service_account_impersonation() {
    let clock = ManualClock::at(t0());
    let (url, seen) = google(200);
    let gcp = GcpWorkloadIdentity::new(token(GCP_AUD, &clock), PROVIDER)
        .unwrap()
        .service_account(SA)
        .endpoints(format!("{url}/v1/token"), &url)
        .with_clock(clock.clone());
    assert_eq!(gcp.token_audience(), GCP_AUD);
    let c = gcp
        .credentials(&CredentialOptions::default())
        .await
        .unwrap();
    assert_eq!((c.provider.as_str(), c.principal.as_str()), ("gcp", SA));
    assert_eq!(c.secret.expose(), format!("ya29.sa-{CANARY}"));
    assert_eq!(c.expires_at, t0() + time::Duration::hours(1));
    {
        let seen = seen.lock().unwrap();
        let sts = &seen[0];
        assert_eq!(
            sts.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(
            sts.form("grant_type").as_deref(),
            Some("urn:ietf:params:oauth:grant-type:token-exchange")
        );
        assert_eq!(sts.form("audience").as_deref(), Some(PROVIDER));
        assert_eq!(
            sts.form("subject_token_type").as_deref(),
            Some("urn:ietf:params:oauth:token-type:jwt")
        );
        assert_eq!(
            sts.form("requested_token_type").as_deref(),
            Some("urn:ietf:params:oauth:token-type:access_token")
        );
        assert_eq!(
            sts.form("scope").as_deref(),
            Some("https://www.googleapis.com/auth/cloud-platform")
        );
        assert!(sts.form("subject_token").unwrap().ends_with(CANARY));
        let iam = &seen[1];
        assert_eq!(
            iam.target,
            format!("/v1/projects/-/serviceAccounts/{SA}:generateAccessToken")
        );
        assert_eq!(
            iam.header("authorization"),
            Some(format!("Bearer ya29.federated-{CANARY}").as_str())
        );
        let body: Value = serde_json::from_str(&iam.body).unwrap();
        assert_eq!(
            body,
            json!({"scope": ["https://www.googleapis.com/auth/cloud-platform"], "lifetime": "3600s"})
        );
    }
    gcp.credentials(&CredentialOptions::default())
        .await
        .unwrap();
    assert_eq!(seen.lock().unwrap().len(), 2, "cached");
    clock.advance(time::Duration::minutes(56));
    gcp.credentials(&CredentialOptions::default())
        .await
        .unwrap();
    assert_eq!(seen.lock().unwrap().len(), 4, "renewed: STS and IAM again");

    // Without a service account, the federated token itself, for the pool's principal.
    let (url, _) = google(200);
    let fed = GcpWorkloadIdentity::new(token(GCP_AUD, &clock), PROVIDER)
        .unwrap()
        .endpoints(format!("{url}/v1/token"), &url);
    let c = fed
        .credentials(&CredentialOptions::default())
        .await
        .unwrap();
    assert_eq!(
        c.principal,
        "principal://iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/github/subject/repo:Acme/models:environment:prod"
    );
    assert_eq!(c.secret.expose(), format!("ya29.federated-{CANARY}"));
}

#[tokio::test]
async fn google_refusals_name_the_condition_audience_or_binding() {
    let clock = ManualClock::at(t0());
    let sts_error = |error: &'static str, description: &'static str| {
        serve(move |_| {
            (
                400,
                "application/json; charset=UTF-8",
                json!({"error": error, "error_description": description}).to_string(),
            )
        })
        .0
    };
    let cases = [
        (
            sts_error(
                "unauthorized_client",
                "The given credential is rejected by the attribute condition.",
            ),
            vec![
                "attribute condition (e.g. assertion.repository_owner == 'acme') must hold",
                "repository=Acme/models",
                "environment=prod",
                "case-sensitive",
            ],
        ),
        (
            sts_error(
                "invalid_grant",
                "The audience in ID Token [https://iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/github/providers/gh] does not match the expected audience.",
            ),
            vec![
                "lists allowed audiences of its own",
                "[identity.gcp] token_audience",
            ],
        ),
    ];
    for (url, wants) in cases {
        let gcp = GcpWorkloadIdentity::new(token(GCP_AUD, &clock), PROVIDER)
            .unwrap()
            .endpoints(format!("{url}/v1/token"), &url);
        let e = gcp
            .credentials(&CredentialOptions::default())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthenticated);
        let msg = e.to_string();
        assert!(
            msg.starts_with(
                "Google STS refused the token exchange for //iam.googleapis.com/projects/123456/"
            ),
            "{msg}"
        );
        for want in wants {
            assert!(msg.contains(want), "{want:?} not in {msg}");
        }
        assert!(!msg.contains(CANARY), "{msg}");
    }

    let (url, _) = google(403);
    let gcp = GcpWorkloadIdentity::new(token(GCP_AUD, &clock), PROVIDER)
        .unwrap()
        .service_account(SA)
        .endpoints(format!("{url}/v1/token"), &url);
    let e = gcp
        .credentials(&CredentialOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied);
    assert!(e.to_string().contains("grant roles/iam.workloadIdentityUser on wharf@models-prod.iam.gserviceaccount.com to principal://iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/github/subject/repo:Acme/models:environment:prod"), "{e}");
    assert!(!e.to_string().contains(CANARY));

    for bad in [
        "projects/models-prod/locations/global/workloadIdentityPools/github/providers/gh",
        "//iam.googleapis.com/projects/123456/workloadIdentityPools/github",
    ] {
        let e = GcpWorkloadIdentity::new(token(GCP_AUD, &clock), bad).unwrap_err();
        assert!(
            e.to_string()
                .contains("is not //iam.googleapis.com/projects/NUMBER/"),
            "{e}"
        );
    }
    let gcp = GcpWorkloadIdentity::new(token(GCP_AUD, &clock), PROVIDER)
        .unwrap()
        .endpoints(format!("{}/v1/token", closed_port()), "http://x");
    let e = gcp
        .credentials(&CredentialOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert!(
        e.to_string().contains("Google STS at http://127.0.0.1:"),
        "{e}"
    );
}
