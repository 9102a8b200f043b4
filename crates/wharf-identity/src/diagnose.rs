//! What a denial means. Clouds answer a rejected token with a terse code; the fix is nearly
//! always in the trust configuration (an IAM role's trust policy, an Entra federated
//! credential, a workload identity provider's attribute condition) not matching what the
//! token says. These helpers put the two side by side, with the usual causes.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use wharf_core::IdToken;

/// `t` as RFC 3339 (`2026-12-06T10:00:00Z`).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// The token's facts a trust policy is written against: `iss`, `aud` and `sub`.
pub fn token_facts(token: &IdToken) -> String {
    format!(
        "the token has iss {:?}, aud {:?}, sub {:?}",
        token.issuer, token.audience, token.subject
    )
}

/// The key prefix IAM conditions use for an issuer: its URL without `https://`
/// (`token.actions.githubusercontent.com`, `oidc.eks.eu-west-1.amazonaws.com/id/…`).
pub fn iam_condition_key(issuer: &str) -> String {
    issuer
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_owned()
}

/// A `sub` pattern that allows every run of the token's repository or project
/// (`repo:acme/models:*`), or the subject itself where it has no such prefix.
pub fn subject_pattern(subject: &str) -> String {
    for prefix in ["repo:", "project_path:"] {
        if let Some(rest) = subject.strip_prefix(prefix)
            && let Some((path, _)) = rest.split_once(':')
        {
            return format!("{prefix}{path}:*");
        }
    }
    subject.to_owned()
}

/// Why a token with this issuer usually does not match a trust that was meant for it.
pub fn usual_causes(issuer: &str) -> &'static str {
    if issuer.contains("token.actions.githubusercontent.com") {
        "sub changes with environments (repo:OWNER/REPO:environment:NAME) and pull requests (repo:OWNER/REPO:pull_request), not only with refs; owner and repository names are case-sensitive; the audience must be the one the trust names"
    } else if issuer.contains("gitlab") {
        "sub is project_path:GROUP/PROJECT:ref_type:branch|tag:ref:NAME and changes with the ref; group and project paths are case-sensitive; aud is what the job's id_tokens entry says"
    } else if issuer.contains("oidc.eks.") || issuer.contains("kubernetes") {
        "sub is system:serviceaccount:NAMESPACE:NAME, so a renamed service account or namespace no longer matches; the issuer is the cluster's own OIDC URL"
    } else {
        "the issuer URL, audience and subject must match exactly (case-sensitive, no trailing slash)"
    }
}

/// What a typical IAM role trusting `token` says, in one line.
pub fn aws_trust(role_arn: &str, token: &IdToken) -> String {
    let key = iam_condition_key(&token.issuer);
    let account = role_arn.split(':').nth(4).unwrap_or("ACCOUNT");
    format!(
        "a role trusting it allows sts:AssumeRoleWithWebIdentity to Federated arn:aws:iam::{account}:oidc-provider/{key} with StringEquals {key}:aud = {:?} and StringLike {key}:sub = {:?}",
        token.audience,
        subject_pattern(&token.subject)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_patterns() {
        assert_eq!(
            subject_pattern("repo:Acme/models:environment:prod"),
            "repo:Acme/models:*"
        );
        assert_eq!(
            subject_pattern("project_path:ml/scoring:ref_type:branch:ref:main"),
            "project_path:ml/scoring:*"
        );
        assert_eq!(
            subject_pattern("system:serviceaccount:ml:scorer"),
            "system:serviceaccount:ml:scorer"
        );
    }
}
