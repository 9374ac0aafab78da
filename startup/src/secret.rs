//! Secrets in configuration: tokens, HMAC secrets, signing keys and the
//! passwords inside database URLs. They print and serialize masked, so a
//! log line, `--check-config` or `/admin/config` never shows them; code
//! that needs the value asks for it with [`Secret::expose`].

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a masked secret shows.
const MASK: &str = "***";

/// A secret string: `Debug`, `Display` and `Serialize` show `***`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(MASK)
    }
}

impl<'de> Deserialize<'de> for Secret {
    /// From a string, or a number (an all-digit secret set in the
    /// environment arrives as one): never an error that quotes the value.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Scalar {
            Text(String),
            Signed(i64),
            Unsigned(u64),
        }
        match Scalar::deserialize(deserializer) {
            Ok(Scalar::Text(text)) => Ok(Self(text)),
            Ok(Scalar::Signed(n)) => Ok(Self(n.to_string())),
            Ok(Scalar::Unsigned(n)) => Ok(Self(n.to_string())),
            Err(_) => Err(serde::de::Error::custom("a secret must be a string")),
        }
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

/// Serializes URLs with any password replaced by `***`
/// (`mysql://flashsale:***@127.0.0.1:3306/orders_0`); for
/// `#[serde(serialize_with = "…")]` on fields holding DSNs.
pub fn masked_urls<S: Serializer>(urls: &[String], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(urls.iter().map(|url| mask_password(url)))
}

/// One URL, its password masked; for a field holding one.
pub fn masked_url<S: Serializer>(url: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&mask_password(url))
}

/// `scheme://user:password@host/…` → `scheme://user:***@host/…`; a URL
/// without a password is returned as it is.
pub fn mask_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else { return url.to_owned() };
    let rest = &url[scheme_end..];
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else { return url.to_owned() };
    match authority[..at].find(':') {
        Some(colon) => format!("{}{}:{MASK}{}", &url[..scheme_end], &rest[..colon], &rest[at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_or_serialize() {
        let secret = Secret::new("hunter22");
        assert_eq!(format!("{secret} {secret:?}"), "*** ***");
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"***\"");
        let back: Secret = serde_json::from_str("\"hunter22\"").unwrap();
        assert_eq!(back.expose(), "hunter22");
        let digits: Secret = serde_json::from_str("12345678901234567").unwrap();
        assert_eq!(digits.expose(), "12345678901234567");
        let err = serde_json::from_str::<Secret>("[\"hunter22\"]").unwrap_err().to_string();
        assert!(!err.contains("hunter22"), "{err}");
    }

    #[test]
    fn passwords_in_urls_are_masked() {
        assert_eq!(mask_password("mysql://u:p@127.0.0.1:3306/orders_0"), "mysql://u:***@127.0.0.1:3306/orders_0");
        assert_eq!(mask_password("redis://:pw@h:6379/0"), "redis://:***@h:6379/0");
        assert_eq!(mask_password("mysql://u@h/db"), "mysql://u@h/db");
        assert_eq!(mask_password("redis://h:6379"), "redis://h:6379");
        assert_eq!(mask_password("mysql://u:p@ss@h/db"), "mysql://u:***@h/db");
    }
}
