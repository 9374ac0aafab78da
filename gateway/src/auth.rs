//! Who the buyer is. In `jwt` mode a buyer route needs `Authorization:
//! Bearer <JWT>` signed by one of `auth.keys` (HS256 with a shared secret,
//! RS256 or ES256 with the issuer's public key; the token's `kid` names the
//! key, so several can be in force during a rotation); `exp` and `sub` are
//! required, and `sub` is the user id. In `trusted_header` mode a storefront
//! backend that authenticated the buyer names them in a header, believed
//! only from a trusted proxy. Rebuilt on every config reload. The `[auth]`
//! section is defined here (and re-exported by `config`).

use std::collections::HashMap;
use std::net::IpAddr;

use hyper::header::{HeaderName, AUTHORIZATION};
use hyper::HeaderMap;
use ipnet::IpNet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use startup::secret::Secret;

/// The buyer-token key of the defaults (kid `dev`, HS256), accepted only in
/// development mode; the load generator, k6 and the tests sign with it.
pub const DEV_TOKEN_SECRET: &str = "dev-buyer-token-signing-key";

/// How buyers are identified on the buyer routes (`/v1/orders…`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Auth {
    pub mode: AuthMode,
    /// `jwt`: the keys buyer tokens may be signed with. A token names its
    /// key in its header's `kid`; one without `kid` is taken only while a
    /// single key is configured. Rotate by adding the new key, moving the
    /// issuer to it, then removing the old one.
    pub keys: Vec<TokenKey>,
    /// Clock skew allowed on `exp` and `nbf`, seconds.
    pub leeway_secs: u64,
    /// `jwt`: the `iss` tokens must carry, if set.
    pub issuer: Option<String>,
    /// `jwt`: the `aud` tokens must carry, if set.
    pub audience: Option<String>,
    /// `trusted_header`: the header holding the user id, believed only from
    /// a peer in `traffic.trusted_proxies`.
    pub user_header: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// `Authorization: Bearer <JWT>`; the buyer is the token's `sub`.
    Jwt,
    /// A storefront backend that authenticated the buyer sets `user_header`.
    TrustedHeader,
}

/// A key buyer tokens may be signed with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenKey {
    pub kid: String,
    pub algorithm: KeyAlgorithm,
    /// HS256: the shared secret (at least 32 bytes outside development mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
    /// RS256, ES256: the issuer's public key, PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_pem: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyAlgorithm {
    HS256,
    RS256,
    ES256,
}

impl Default for Auth {
    fn default() -> Self {
        Self {
            mode: AuthMode::Jwt,
            keys: vec![TokenKey {
                kid: "dev".into(),
                algorithm: KeyAlgorithm::HS256,
                secret: Some(Secret::from(DEV_TOKEN_SECRET)),
                public_key_pem: None,
            }],
            leeway_secs: 5,
            issuer: None,
            audience: None,
            user_header: "x-user-id".into(),
        }
    }
}

/// Shortest HS256 secret outside development mode (RFC 7518: the hash size).
const MIN_HS256_SECRET: usize = 32;
/// Most clock skew allowed on `exp` and `nbf`, seconds.
const MAX_LEEWAY_SECS: u64 = 300;

/// Why a request names no buyer (401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("an Authorization: Bearer token is required")]
    Missing,
    #[error("the token names no key this gateway knows")]
    UnknownKey,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("the user header is believed only from a trusted proxy")]
    UntrustedPeer,
    #[error("an X-Channel-Key is required")]
    ChannelKeyMissing,
    #[error("the X-Channel-Key names no channel")]
    UnknownChannelKey,
}

impl AuthError {
    /// The label of the failure in metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::UnknownKey => "unknown_key",
            Self::Invalid(_) => "invalid",
            Self::UntrustedPeer => "untrusted_peer",
            Self::ChannelKeyMissing => "channel_key_missing",
            Self::UnknownChannelKey => "unknown_channel_key",
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

struct Key {
    decoding: DecodingKey,
    validation: Validation,
}

pub struct Verifier {
    /// The section it was built from, to tell whether a reload changes it.
    pub config: Auth,
    mode: AuthMode,
    keys: HashMap<String, Key>,
    user_header: HeaderName,
}

impl Verifier {
    /// The verifier of `config`, or what is wrong with it.
    pub fn build(config: &Auth, development: bool) -> Result<Self, String> {
        let user_header = HeaderName::try_from(config.user_header.as_str())
            .map_err(|_| format!("user_header {:?} is not a header name", config.user_header))?;
        if config.leeway_secs > MAX_LEEWAY_SECS {
            return Err(format!("leeway_secs must be at most {MAX_LEEWAY_SECS}"));
        }
        if config.mode == AuthMode::Jwt && config.keys.is_empty() {
            return Err("keys must name at least one key in jwt mode".into());
        }
        let mut keys = HashMap::new();
        for key in &config.keys {
            let built =
                build_key(key, config, development).map_err(|problem| format!("key {:?}: {problem}", key.kid))?;
            if keys.insert(key.kid.clone(), built).is_some() {
                return Err(format!("key id {:?} is used twice", key.kid));
            }
        }
        Ok(Self { config: config.clone(), mode: config.mode, keys, user_header })
    }

    /// The buyer's user id. `peer` is the address the request came from;
    /// `trusted` the proxies whose user header is believed.
    pub fn buyer(&self, headers: &HeaderMap, peer: IpAddr, trusted: &[IpNet]) -> Result<u64, AuthError> {
        let buyer = match self.mode {
            AuthMode::Jwt => self.token_buyer(headers),
            AuthMode::TrustedHeader => self.header_buyer(headers, peer, trusted),
        };
        if let Err(err) = &buyer {
            metrics::counter!("gateway_auth_failures_total", "reason" => err.reason()).increment(1);
        }
        buyer
    }

    fn token_buyer(&self, headers: &HeaderMap) -> Result<u64, AuthError> {
        let token = headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or(AuthError::Missing)?;
        let header = jsonwebtoken::decode_header(token).map_err(|err| AuthError::Invalid(err.to_string()))?;
        let key = match &header.kid {
            Some(kid) => self.keys.get(kid),
            None if self.keys.len() == 1 => self.keys.values().next(),
            None => None,
        }
        .ok_or(AuthError::UnknownKey)?;
        let claims = jsonwebtoken::decode::<Claims>(token, &key.decoding, &key.validation)
            .map_err(|err| AuthError::Invalid(err.to_string()))?
            .claims;
        user_id(&claims.sub).ok_or_else(|| AuthError::Invalid("sub must be a positive integer user id".into()))
    }

    fn header_buyer(&self, headers: &HeaderMap, peer: IpAddr, trusted: &[IpNet]) -> Result<u64, AuthError> {
        if !trusted.iter().any(|net| net.contains(&peer)) {
            return Err(AuthError::UntrustedPeer);
        }
        let mut values = headers.get_all(&self.user_header).iter();
        let value = values.next().ok_or(AuthError::Missing)?;
        // A client's own copy in front of the proxy's must not pass.
        if values.next().is_some() {
            return Err(AuthError::Invalid(format!("more than one {} header", self.user_header)));
        }
        value
            .to_str()
            .ok()
            .and_then(user_id)
            .ok_or_else(|| AuthError::Invalid(format!("{} must be a positive integer user id", self.user_header)))
    }
}

fn user_id(text: &str) -> Option<u64> {
    text.parse().ok().filter(|id| *id > 0)
}

fn build_key(key: &TokenKey, config: &Auth, development: bool) -> Result<Key, String> {
    let (algorithm, decoding) = match (key.algorithm, &key.secret, &key.public_key_pem) {
        (KeyAlgorithm::HS256, Some(secret), None) => {
            if !development && secret.expose().len() < MIN_HS256_SECRET {
                return Err(format!("an HS256 secret needs at least {MIN_HS256_SECRET} bytes"));
            }
            (Algorithm::HS256, DecodingKey::from_secret(secret.expose().as_bytes()))
        }
        (KeyAlgorithm::RS256, None, Some(pem)) => {
            (Algorithm::RS256, DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|err| err.to_string())?)
        }
        (KeyAlgorithm::ES256, None, Some(pem)) => {
            (Algorithm::ES256, DecodingKey::from_ec_pem(pem.as_bytes()).map_err(|err| err.to_string())?)
        }
        (KeyAlgorithm::HS256, _, _) => return Err("HS256 takes a secret and no public_key_pem".into()),
        _ => return Err("RS256 and ES256 take a public_key_pem and no secret".into()),
    };
    // Only the key's own algorithm: a token cannot pick a weaker one (or none).
    let mut validation = Validation::new(algorithm);
    validation.leeway = config.leeway_secs;
    validation.validate_nbf = true;
    // A configured issuer or audience must be in the token, not just match when present.
    let mut required = vec!["exp", "sub"];
    match &config.issuer {
        Some(issuer) => {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        None => validation.iss = None,
    }
    match &config.audience {
        Some(audience) => {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        None => validation.validate_aud = false,
    }
    validation.set_required_spec_claims(&required);
    Ok(Key { decoding, validation })
}
