//! The deployment's settings: wrangler `[vars]` and secrets, read in one place.

use worker::Env;

use super::http::{ApiError, ApiResult};
use crate::error_code::ErrorCode;
use crate::identity::IdentitySecret;

/// A wrangler var (or secret) as a string.
pub fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .map(|v| v.to_string())
        .or_else(|_| env.secret(name).map(|v| v.to_string()))
        .ok()
}

/// A numeric var with a default (also when it does not parse).
pub fn var_num<T: std::str::FromStr>(env: &Env, name: &str, default: T) -> T {
    var(env, name)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// What every request needs to know about its caller's rights.
#[derive(Debug, Clone)]
pub struct Config {
    /// Site keys the snippet may use.
    pub site_keys: Vec<String>,
    /// Origins allowed to call the browser endpoints (CORS).
    pub allowed_origins: Vec<String>,
    /// Server-to-server bearer token (secret).
    pub api_token: Option<String>,
    /// Key the site's backend signs lead ids with (secret); none ⇒ no identify is verified.
    pub identity: Option<IdentitySecret>,
}

impl Config {
    /// Reads the settings; missing optional ones get safe defaults (no token ⇒ no server API).
    pub fn from_env(env: &Env) -> Config {
        let list = |name: &str| -> Vec<String> {
            var(env, name)
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        Config {
            site_keys: list("SITE_KEYS"),
            allowed_origins: list("ALLOWED_ORIGINS"),
            api_token: env
                .secret("API_TOKEN")
                .ok()
                .map(|s| s.to_string())
                .filter(|s| !s.is_empty()),
            identity: env
                .secret("IDENTITY_SECRET")
                .ok()
                .and_then(|s| IdentitySecret::new(&s.to_string()).ok()),
        }
    }

    /// Whether the snippet's site key is one of this deployment's.
    pub fn check_site_key(&self, key: &str) -> ApiResult<()> {
        if self.site_keys.iter().any(|k| k == key) {
            return Ok(());
        }
        Err(ApiError::new(
            403,
            ErrorCode::InvalidSiteKey,
            "unknown site key",
        ))
    }

    /// Checks a group event's `account_signature`: the site backend's signature of
    /// `account:<id>` ([`crate::account::SIGNED_PREFIX`]) with the identity secret.
    pub fn verify_account(&self, account: &str, signature: &str) -> ApiResult<()> {
        let signed = format!("{}{account}", crate::account::SIGNED_PREFIX);
        self.verify_lead(&signed, signature).map_err(|mut e| {
            if e.code == ErrorCode::InvalidSignature && e.message.starts_with("`lead_signature`") {
                e.message = "`account_signature` does not sign this account id".into();
            }
            e
        })
    }

    /// Checks a lead signature: `Ok(())` when it signs `lead`, else the error to answer.
    pub fn verify_lead(&self, lead: &str, signature: &str) -> ApiResult<()> {
        match &self.identity {
            None => Err(ApiError::new(
                403,
                ErrorCode::InvalidSignature,
                "lead signatures cannot be checked: IDENTITY_SECRET is not configured",
            )),
            Some(k) if crate::identity::verify(k, lead, signature) => Ok(()),
            Some(_) => Err(ApiError::new(
                403,
                ErrorCode::InvalidSignature,
                "`lead_signature` does not sign this lead id",
            )),
        }
    }
}
