//! Bearer-token authentication. The admin token sees everything; a pool token sees only its
//! pool, and anything of another pool is answered as if it did not exist (404, not 403), so a
//! tenant cannot even learn which other pools exist. Only SHA-256 hashes of tokens are kept.

use caas_api::central::PoolRecord;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Admin,
    Pool(String),
}

impl Principal {
    /// Whether this principal may see `pool`.
    pub fn sees(&self, pool: &str) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Pool(p) => p == pool,
        }
    }
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A fresh pool token (`caas_` + 32 random bytes in hex).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("caas_{}", hex::encode(bytes))
}

/// Compares without an early exit, so response time does not leak how much of a hash matched.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Resolves a token against the admin hash and the pools' token hashes.
pub fn authenticate<'a>(
    token: &str,
    admin_hash: &str,
    pools: impl IntoIterator<Item = &'a PoolRecord>,
) -> Option<Principal> {
    let hash = hash_token(token);
    if same(&hash, admin_hash) {
        return Some(Principal::Admin);
    }
    pools
        .into_iter()
        .find(|p| p.token_hashes.iter().any(|h| same(h, &hash)))
        .map(|p| Principal::Pool(p.name.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_pool_and_unknown() {
        let admin = hash_token("admin-secret-token");
        let token = new_token();
        let pools = vec![
            PoolRecord {
                version: 1,
                name: "a".into(),
                token_hashes: vec![hash_token(&token)],
                ssh_keys: vec![],
                created_at: 0,
            },
            PoolRecord {
                version: 1,
                name: "b".into(),
                token_hashes: vec![],
                ssh_keys: vec![],
                created_at: 0,
            },
        ];
        assert_eq!(
            authenticate("admin-secret-token", &admin, &pools),
            Some(Principal::Admin)
        );
        assert_eq!(
            authenticate(&token, &admin, &pools),
            Some(Principal::Pool("a".into()))
        );
        assert_eq!(authenticate("nope", &admin, &pools), None);
        assert!(Principal::Pool("a".into()).sees("a"));
        assert!(!Principal::Pool("a".into()).sees("b"));
        assert_ne!(new_token(), new_token());
    }
}
