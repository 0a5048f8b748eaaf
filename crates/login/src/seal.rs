//! Encrypted, authenticated cookie values: AES-256-GCM (aws-lc-rs) under keys read
//! from `sessions.secret_file`, one base64 line each, the first sealing and every
//! line opening (so keys rotate). A value is `v1.<kid>.<base64url(nonce ‖ ciphertext ‖ tag)>`;
//! the purpose (`session`, `state`) is authenticated as associated data, so a
//! value sealed for one purpose never opens as another.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use zeroize::Zeroizing;

/// Why the secret file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidSecret {
    /// A line is not base64 (standard or URL-safe).
    #[error("line {line}: not base64 (standard or URL-safe)")]
    NotBase64 {
        /// 1-based line.
        line: usize,
    },
    /// A line decodes to fewer than 32 bytes.
    #[error("line {line}: {len} bytes; at least 32 are needed")]
    TooShort {
        /// 1-based line.
        line: usize,
        /// Its length.
        len: usize,
    },
    /// No key at all.
    #[error("holds no key")]
    Empty,
    /// The crypto library refused the key.
    #[error("the key cannot be used")]
    Crypto,
}

/// Why a sealed value does not open (all alike to a client).
#[derive(Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Unsealed {
    /// Not `v1.<kid>.<base64url>` or too short.
    #[error("not a sealed value")]
    Malformed,
    /// No key has this id (an old key dropped, or a foreign cookie).
    #[error("sealed by an unknown key")]
    UnknownKey,
    /// Authentication failed: tampered, or sealed for another purpose.
    #[error("does not authenticate")]
    Tampered,
}

struct CookieKey {
    kid: String,
    key: LessSafeKey,
}

/// The cookie keys, current first.
pub struct Sealer {
    keys: Vec<CookieKey>,
    rng: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("Sealer").field("kids", &kids).finish()
    }
}

const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_encode_padding(false)
    .with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);

struct Len32;

impl aws_lc_rs::hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

impl Sealer {
    /// Keys from the secret file's text: one base64 line each (standard or
    /// URL-safe, padding optional, at least 32 bytes); blank lines and `#`
    /// comments are skipped. Each line goes through HKDF-SHA256 into an AES-256 key;
    /// its id is the start of the SHA-256 of that key.
    ///
    /// # Errors
    /// A line that is not base64 or is too short, or no line at all.
    pub fn try_from_lines(text: &str) -> Result<Sealer, InvalidSecret> {
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let secret = Zeroizing::new(
                STANDARD
                    .decode(line)
                    .or_else(|_| URL_SAFE.decode(line))
                    .map_err(|_| InvalidSecret::NotBase64 { line: i + 1 })?,
            );
            if secret.len() < 32 {
                return Err(InvalidSecret::TooShort {
                    line: i + 1,
                    len: secret.len(),
                });
            }
            let prk = Salt::new(HKDF_SHA256, b"portcullis session cookie").extract(&secret);
            let mut raw = Zeroizing::new([0u8; 32]);
            prk.expand(&[b"aes-256-gcm"], Len32)
                .and_then(|okm| okm.fill(&mut raw[..]))
                .map_err(|_| InvalidSecret::Crypto)?;
            let kid = URL_SAFE.encode(&digest(&SHA256, &raw[..]).as_ref()[..6]);
            let key = UnboundKey::new(&AES_256_GCM, &raw[..]).map_err(|_| InvalidSecret::Crypto)?;
            keys.push(CookieKey {
                kid,
                key: LessSafeKey::new(key),
            });
        }
        if keys.is_empty() {
            return Err(InvalidSecret::Empty);
        }
        Ok(Sealer {
            keys,
            rng: SystemRandom::new(),
        })
    }

    /// Seals `plain` for `purpose` with the current key.
    ///
    /// # Errors
    /// Only when the system's random source or the cipher fails.
    pub fn seal(&self, purpose: &str, plain: &[u8]) -> Result<String, Unsealed> {
        let current = self.keys.first().ok_or(Unsealed::UnknownKey)?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| Unsealed::Malformed)?;
        let mut data = plain.to_vec();
        current
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(purpose.as_bytes()),
                &mut data,
            )
            .map_err(|_| Unsealed::Malformed)?;
        let mut out = Vec::with_capacity(NONCE_LEN + data.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&data);
        Ok(format!("v1.{}.{}", current.kid, URL_SAFE.encode(out)))
    }

    /// Opens a value sealed for `purpose` by any of the keys.
    ///
    /// # Errors
    /// [`Unsealed`]: malformed, unknown key, or tampered.
    pub fn open(&self, purpose: &str, sealed: &str) -> Result<Vec<u8>, Unsealed> {
        let rest = sealed.strip_prefix("v1.").ok_or(Unsealed::Malformed)?;
        let (kid, body) = rest.split_once('.').ok_or(Unsealed::Malformed)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(Unsealed::UnknownKey)?;
        if body.len() > 64 * 1024 {
            return Err(Unsealed::Malformed);
        }
        let bytes = portcullis_jose::b64::decode(body.as_bytes()).ok_or(Unsealed::Malformed)?;
        if bytes.len() < NONCE_LEN + 16 {
            return Err(Unsealed::Malformed);
        }
        let (nonce, data) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Unsealed::Malformed)?;
        let mut data = data.to_vec();
        let plain = key
            .key
            .open_in_place(nonce, Aad::from(purpose.as_bytes()), &mut data)
            .map_err(|_| Unsealed::Tampered)?;
        Ok(plain.to_vec())
    }

    /// Random bytes, base64url (for `state`, `nonce`, the PKCE verifier, session ids).
    ///
    /// # Errors
    /// Only when the system's random source fails.
    pub fn random(&self, bytes: usize) -> Result<String, Unsealed> {
        let mut buf = vec![0u8; bytes];
        self.rng.fill(&mut buf).map_err(|_| Unsealed::Malformed)?;
        Ok(URL_SAFE.encode(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes, padded
    const K2: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA"; // 32 bytes, no padding

    #[test]
    fn seals_and_opens_and_rotates() {
        let old = Sealer::try_from_lines(K1).unwrap();
        let sealed = old.seal("session", b"hello").unwrap();
        assert_eq!(old.open("session", &sealed).unwrap(), b"hello");
        // Another purpose never opens it.
        assert_eq!(old.open("state", &sealed), Err(Unsealed::Tampered));
        // A new current key still opens the old value.
        let rotated = Sealer::try_from_lines(&format!("{K2}\n{K1}\n")).unwrap();
        assert_eq!(rotated.open("session", &sealed).unwrap(), b"hello");
        let new = rotated.seal("session", b"x").unwrap();
        assert_eq!(old.open("session", &new), Err(Unsealed::UnknownKey));
    }

    #[test]
    fn denies_tampered_values() {
        let s = Sealer::try_from_lines(K1).unwrap();
        let sealed = s.seal("session", b"hello world").unwrap();
        let mut bytes = sealed.into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert_eq!(s.open("session", &tampered), Err(Unsealed::Tampered));
        assert_eq!(s.open("session", "v1.x"), Err(Unsealed::Malformed));
        assert_eq!(s.open("session", "garbage"), Err(Unsealed::Malformed));
    }

    #[test]
    fn refuses_short_or_bad_keys() {
        assert!(matches!(
            Sealer::try_from_lines("c2hvcnQ="),
            Err(InvalidSecret::TooShort { line: 1, .. })
        ));
        assert!(matches!(
            Sealer::try_from_lines("not base64!!"),
            Err(InvalidSecret::NotBase64 { line: 1 })
        ));
        assert!(matches!(
            Sealer::try_from_lines("\n# c\n"),
            Err(InvalidSecret::Empty)
        ));
    }
}
