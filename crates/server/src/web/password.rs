//! Consumers' passwords: Argon2id (RFC 9106) with the `argon2` crate's defaults (19 MiB, two
//! passes, one lane — OWASP's recommended minimum), stored as PHC strings.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// The shortest password accepted.
pub const MIN_CHARS: usize = 8;
/// The longest password accepted (bounds the hashing work a login costs).
pub const MAX_CHARS: usize = 256;

/// Why a password cannot be set.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Too short or too long.
    #[error("a password must be {MIN_CHARS} to {MAX_CHARS} characters")]
    Length,
    /// No randomness for the salt, or the hasher failed.
    #[error("the password could not be hashed: {0}")]
    Hashing(String),
}

/// The PHC string of `password` under a fresh 16-byte salt.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    let chars = password.chars().count();
    if !(MIN_CHARS..=MAX_CHARS).contains(&chars) {
        return Err(PasswordError::Length);
    }
    let mut salt = [0u8; 16];
    openssl::rand::rand_bytes(&mut salt).map_err(|e| PasswordError::Hashing(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hashing(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hashing(e.to_string()))
}

/// A hash of a password nobody knows: what an account without a password is checked against,
/// so that a login costs the same time whether the account exists or not.
fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash("decoy password nobody has").unwrap_or_default())
}

/// Whether `password` matches `phc` (a missing or unreadable hash matches nothing, after the
/// same work).
pub fn verify(phc: Option<&str>, password: &str) -> bool {
    if password.chars().count() > MAX_CHARS {
        return false;
    }
    let (phc, real) = match phc {
        Some(phc) => (phc, true),
        None => (decoy(), false),
    };
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
        && real
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let phc = hash("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify(Some(&phc), "correct horse"));
        assert!(!verify(Some(&phc), "correct horsf"));
        assert!(!verify(None, "decoy password nobody has"));
        assert!(!verify(Some("not a hash"), "correct horse"));
        assert_ne!(hash("correct horse").unwrap(), phc, "salted");
        assert!(matches!(hash("short"), Err(PasswordError::Length)));
        assert!(matches!(hash(&"x".repeat(257)), Err(PasswordError::Length)));
    }
}
