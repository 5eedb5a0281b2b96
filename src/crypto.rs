//! Everything secret: random tokens, token hashes, the AEAD for platform access tokens, and
//! password hashing. Nothing here is hand-rolled; it wraps RustCrypto's reviewed crates.

use std::sync::{Arc, OnceLock};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use argon2::password_hash::{self, Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

/// A cryptographic operation failed: a stored secret that does not decrypt, a hashing task that
/// died. The message is for the log, never for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoError(pub String);

impl std::fmt::Display for CryptoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CryptoError {}

/// 256 bits from the OS generator, URL-safe base64: session tokens, CSRF tokens, keys.
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

/// What the database keeps of a session token: a leaked table does not yield usable cookies.
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The PKCE S256 challenge of a verifier: base64url (no padding) of its SHA-256 (RFC 7636).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The owner bound into the ciphertext of secrets that belong to no user (OAuth client secrets);
/// user ids start at 1.
pub const NO_USER: i64 = 0;

pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Encrypts platform access tokens at rest with XChaCha20-Poly1305 (random 192-bit nonces, so no
/// nonce bookkeeping). The owning user's id is bound in as associated data, so a ciphertext copied
/// onto another user's row does not decrypt.
#[derive(Clone)]
pub struct TokenCipher(XChaCha20Poly1305);

const NONCE_LEN: usize = 24;

impl TokenCipher {
    /// `key` is base64 of exactly 32 bytes (the `token_key` setting).
    pub fn from_base64(key: &str) -> Result<TokenCipher, String> {
        let bytes = STANDARD
            .decode(key.trim())
            .map_err(|_| "token_key is not valid base64".to_string())?;
        if bytes.len() != 32 {
            return Err(format!(
                "token_key must be base64 of 32 bytes, got {} bytes",
                bytes.len()
            ));
        }
        XChaCha20Poly1305::new_from_slice(&bytes)
            .map(TokenCipher)
            .map_err(|_| "token_key has the wrong length".to_string())
    }

    pub fn generate_key() -> String {
        STANDARD.encode(random_bytes::<32>())
    }

    pub fn encrypt(&self, plaintext: &str, user_id: i64) -> Result<Vec<u8>, CryptoError> {
        let nonce_bytes = random_bytes::<NONCE_LEN>();
        let aad = user_id.to_be_bytes();
        let ciphertext = self
            .0
            .encrypt(
                XNonce::from_slice(&nonce_bytes),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError("access token encryption failed".into()))?;
        let mut blob = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        blob.extend_from_slice(&nonce_bytes);
        blob.extend_from_slice(&ciphertext);
        Ok(blob)
    }

    pub fn decrypt(&self, blob: &[u8], user_id: i64) -> Result<String, CryptoError> {
        if blob.len() < NONCE_LEN {
            return Err(CryptoError("stored access token is truncated".into()));
        }
        let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
        let aad = user_id.to_be_bytes();
        let plaintext = self
            .0
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| {
                CryptoError("stored access token does not decrypt with token_key".into())
            })?;
        String::from_utf8(plaintext)
            .map_err(|_| CryptoError("stored access token is not UTF-8".into()))
    }
}

/// Argon2id password hashing with the crate's defaults (the OWASP minimum: 19 MiB, t=2, p=1).
///
/// Each hash takes tens of milliseconds of CPU and ~19 MiB, so hashing runs on the blocking pool
/// and at most `permits` hashes run at once: a flood of logins queues here instead of stalling the
/// async workers. Each permit owns one reusable 19 MiB work area: allocating and freeing one per
/// hash lets the allocator keep freed areas per thread, and a login flood measured 850 MiB of RSS
/// that way (see BENCHMARKS.md). The areas are kept while hashes keep coming and freed when the
/// last hash of a burst ends, so an idle server does not hold 19 MiB per permit.
/// Clones share the permits and work areas.
#[derive(Clone)]
pub struct PasswordHasherPool {
    permits: Arc<Semaphore>,
    limit: usize,
    work_areas: Arc<Mutex<Vec<Vec<Block>>>>,
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    /// Work areas allocated so far (a burst of hashes shares at most one per permit).
    areas_made: Arc<AtomicUsize>,
}

/// The result of checking a password.
pub struct Verification {
    pub valid: bool,
    /// A fresh hash when the stored one used weaker parameters than today's defaults.
    pub upgraded_hash: Option<String>,
}

impl PasswordHasherPool {
    pub fn new(permits: usize) -> PasswordHasherPool {
        PasswordHasherPool {
            permits: Arc::new(Semaphore::new(permits.max(1))),
            limit: permits.max(1),
            work_areas: Arc::new(Mutex::new(Vec::new())),
            running: Arc::new(AtomicUsize::new(0)),
            peak: Arc::new(AtomicUsize::new(0)),
            areas_made: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// How many hashes may run at once.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The most hashes that have run at the same moment since start.
    pub fn peak_concurrency(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// One permit per core.
    pub fn for_this_machine() -> PasswordHasherPool {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        PasswordHasherPool::new(cores)
    }

    pub async fn hash(&self, password: &str) -> Result<String, CryptoError> {
        let password = password.to_owned();
        self.run(move |memory| hash_with(memory, &password)).await?
    }

    /// Checks `password` against `stored`, or against a fixed dummy hash when there is no user, so
    /// that an unknown username costs the same time as a wrong password.
    pub async fn verify(
        &self,
        password: &str,
        stored: Option<&str>,
    ) -> Result<Verification, CryptoError> {
        let password = password.to_owned();
        let stored = stored.map(str::to_owned);
        self.run(move |memory| {
            let (hash, real) = match &stored {
                Some(h) => (h.as_str(), true),
                None => (dummy_hash(), false),
            };
            let Ok(parsed) = PasswordHash::new(hash) else {
                return Ok(Verification {
                    valid: false,
                    upgraded_hash: None,
                });
            };
            let valid = verify_with(memory, password.as_bytes(), &parsed) && real;
            let upgraded_hash = if valid && needs_rehash(&parsed) {
                Some(hash_with(memory, &password)?)
            } else {
                None
            };
            Ok(Verification {
                valid,
                upgraded_hash,
            })
        })
        .await?
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, CryptoError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| CryptoError("password hasher shut down".into()))?;
        let mut memory = self
            .work_areas
            .lock()
            .ok()
            .and_then(|mut areas| areas.pop())
            .unwrap_or_else(|| {
                self.areas_made.fetch_add(1, Ordering::Relaxed);
                Vec::new()
            });
        let (running, peak) = (self.running.clone(), self.peak.clone());
        let (result, memory) = tokio::task::spawn_blocking(move || {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            let result = work(&mut memory);
            running.fetch_sub(1, Ordering::SeqCst);
            (result, memory)
        })
        .await
        .map_err(|e| CryptoError(format!("password hashing task failed: {e}")))?;
        if let Ok(mut areas) = self.work_areas.lock() {
            // Nobody holds or waits for a permit but this call: the burst is over.
            if self.permits.available_permits() + 1 >= self.limit {
                areas.clear();
            } else {
                areas.push(memory);
            }
        }
        Ok(result)
    }
}

/// Grows the reusable work area to what `params` needs (a stored hash may ask for more).
fn work_area(memory: &mut Vec<Block>, params: &Params) -> usize {
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    blocks
}

/// Hashes with today's parameters into a PHC string, exactly as `Argon2::hash_password` would,
/// but in the caller's work area.
fn hash_with(memory: &mut Vec<Block>, password: &str) -> Result<String, CryptoError> {
    let failed = |e: String| CryptoError(format!("password hashing failed: {e}"));
    let params = Params::default();
    let blocks = work_area(memory, &params);
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_buffer = [0u8; 64];
    let salt_bytes = salt
        .as_salt()
        .decode_b64(&mut salt_buffer)
        .map_err(|e| failed(e.to_string()))?;
    let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = Output::init_with(output_len, |out| {
        argon
            .hash_password_into_with_memory(
                password.as_bytes(),
                salt_bytes,
                out,
                &mut memory[..blocks],
            )
            .map_err(|_| password_hash::Error::Crypto)
    })
    .map_err(|e| failed(e.to_string()))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| failed(e.to_string()))?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// Recomputes `hash` for `password` in the work area; compares in constant time (`Output`'s
/// equality is `ct_eq`).
fn verify_with(memory: &mut Vec<Block>, password: &[u8], hash: &PasswordHash<'_>) -> bool {
    let (Some(expected), Some(salt)) = (hash.hash, hash.salt) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (Algorithm::try_from(hash.algorithm), Params::try_from(hash))
    else {
        return false;
    };
    let version = match hash.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let mut salt_buffer = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_buffer) else {
        return false;
    };
    let blocks = work_area(memory, &params);
    let argon = Argon2::new(algorithm, version, params);
    let computed = Output::init_with(expected.len(), |out| {
        argon
            .hash_password_into_with_memory(password, salt_bytes, out, &mut memory[..blocks])
            .map_err(|_| password_hash::Error::Crypto)
    });
    computed.is_ok_and(|c| c == expected)
}

fn needs_rehash(hash: &PasswordHash<'_>) -> bool {
    let current = Params::default();
    let Ok(stored) = Params::try_from(hash) else {
        return true;
    };
    hash.algorithm != Algorithm::Argon2id.ident()
        || hash.version != Some(Version::V0x13.into())
        || stored.m_cost() < current.m_cost()
        || stored.t_cost() < current.t_cost()
        || stored.p_cost() < current.p_cost()
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_with(&mut Vec::new(), &random_token()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_cipher_round_trips_and_binds_the_owner() {
        let cipher = TokenCipher::from_base64(&TokenCipher::generate_key()).unwrap();
        let blob = cipher.encrypt("secret-token", 7).unwrap();
        assert!(!blob.windows(12).any(|w| w == b"secret-token"));
        assert_eq!(cipher.decrypt(&blob, 7).unwrap(), "secret-token");
        assert!(cipher.decrypt(&blob, 8).is_err());
    }

    #[test]
    fn token_key_of_the_wrong_size_is_refused() {
        assert!(TokenCipher::from_base64(&STANDARD.encode([0u8; 16])).is_err());
        assert!(TokenCipher::from_base64("not base64!").is_err());
    }

    #[test]
    fn weaker_hash_parameters_need_a_rehash() {
        use argon2::password_hash::PasswordHasher;
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8, 1, 1, None).unwrap(),
        );
        let salt = SaltString::generate(&mut OsRng);
        let hash = weak.hash_password(b"pw", &salt).unwrap().to_string();
        assert!(needs_rehash(&PasswordHash::new(&hash).unwrap()));
        let strong = hash_with(&mut Vec::new(), "pw").unwrap();
        assert!(!needs_rehash(&PasswordHash::new(&strong).unwrap()));
    }

    /// The work-area hashing must agree with the crate's own API in both directions, so stored
    /// hashes stay portable.
    #[test]
    fn work_area_hashes_interoperate_with_the_argon2_crate() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let mut memory = Vec::new();
        let ours = hash_with(&mut memory, "correct horse").unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok());
        assert!(Argon2::default()
            .verify_password(b"wrong horse", &parsed)
            .is_err());

        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default()
            .hash_password(b"battery staple", &salt)
            .unwrap();
        assert!(verify_with(&mut memory, b"battery staple", &theirs));
        assert!(!verify_with(&mut memory, b"battery stapler", &theirs));

        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(64, 1, 1, None).unwrap(),
        )
        .hash_password(b"old", &salt)
        .unwrap();
        assert!(
            verify_with(&mut memory, b"old", &weak),
            "older parameters still verify"
        );
    }

    #[test]
    fn a_burst_of_hashes_shares_one_work_area_per_permit_and_frees_them_after() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let pool = PasswordHasherPool::new(2);
        rt.block_on(async {
            let hash = pool.hash("correct horse").await.unwrap();
            assert!(pool.work_areas.lock().unwrap().is_empty(), "idle: freed");
            let made = pool.areas_made.load(Ordering::Relaxed);
            let burst: Vec<_> = (0..8)
                .map(|n| {
                    let (pool, hash) = (pool.clone(), hash.clone());
                    tokio::spawn(async move {
                        let stored = (n % 2 == 0).then_some(hash.as_str());
                        pool.verify("correct horse", stored).await.unwrap().valid
                    })
                })
                .collect();
            for (n, task) in burst.into_iter().enumerate() {
                assert_eq!(task.await.unwrap(), n % 2 == 0);
            }
            let in_burst = pool.areas_made.load(Ordering::Relaxed) - made;
            assert!(
                (1..=2).contains(&in_burst),
                "8 hashes on 2 permits made {in_burst} work areas"
            );
        });
        assert!(
            pool.work_areas.lock().unwrap().is_empty(),
            "idle again: freed"
        );
    }
}
