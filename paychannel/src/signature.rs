//! HMAC-SHA256 signatures over raw bodies, compared in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Hex HMAC-SHA256 of `body` under `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `signature_hex` is `body`'s signature. The comparison takes the
/// same time wherever the first wrong byte is.
pub fn verify(secret: &[u8], body: &[u8], signature_hex: &str) -> bool {
    let Ok(signature) = hex::decode(signature_hex) else { return false };
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies() {
        let signature = sign(b"secret", b"{\"a\":1}");
        assert_eq!(signature.len(), 64);
        assert!(verify(b"secret", b"{\"a\":1}", &signature));
        assert!(!verify(b"secret", b"{\"a\":2}", &signature), "tampered body");
        assert!(!verify(b"other", b"{\"a\":1}", &signature), "wrong secret");
        assert!(!verify(b"secret", b"{\"a\":1}", "not hex"));
        assert!(!verify(b"secret", b"{\"a\":1}", ""));
    }

    #[test]
    fn matches_a_known_vector() {
        // RFC 4231, test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
