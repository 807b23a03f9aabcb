//! Bearer-token authentication. The admin token sees everything; a pool token (role `ops` or
//! `developer`) sees only its pool, and anything of another pool is answered as if it did not exist (404, not 403), so a
//! tenant cannot even learn which other pools exist. Only SHA-256 hashes of tokens are kept.

use caas_api::central::PoolRecord;
use caas_api::roles::{token_id, Need, PoolToken, Role};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Admin,
    Pool {
        pool: String,
        role: Role,
        /// The token's public id (audit).
        token_id: String,
    },
}

impl Principal {
    /// Whether this principal may see `pool`.
    pub fn sees(&self, pool: &str) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Pool { pool: p, .. } => p == pool,
        }
    }

    /// Whether this principal's role covers `need` (pool visibility is checked apart).
    pub fn has(&self, need: Need) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Pool { role, .. } => match need {
                Need::Admin => false,
                Need::Ops => *role == Role::Ops,
                Need::Developer => true,
            },
        }
    }

    /// `admin`, `ops` or `developer`.
    pub fn role_name(&self) -> &'static str {
        match self {
            Principal::Admin => "admin",
            Principal::Pool { role, .. } => role.as_str(),
        }
    }

    /// `admin` or the pool token's id.
    pub fn token_id(&self) -> &str {
        match self {
            Principal::Admin => "admin",
            Principal::Pool { token_id, .. } => token_id,
        }
    }

    pub fn is_developer(&self) -> bool {
        matches!(
            self,
            Principal::Pool {
                role: Role::Developer,
                ..
            }
        )
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

/// Compares two token hashes in constant time.
pub fn same_hash(a: &str, b: &str) -> bool {
    same(a, b)
}

/// A new token record for `pool` with its hash; the token itself is returned once.
pub fn issue(role: Role, label: Option<String>, created_at: u64) -> (String, PoolToken) {
    let token = new_token();
    let hash = hash_token(&token);
    let record = PoolToken {
        id: token_id(&hash),
        role,
        hash,
        created_at,
        label,
    };
    (token, record)
}

/// Resolves a token against the admin hash and the pools' tokens. Every candidate is compared
/// (no early exit on a match), so the time taken does not say which pool a token belongs to.
pub fn authenticate<'a>(
    token: &str,
    admin_hash: &str,
    pools: impl IntoIterator<Item = &'a PoolRecord>,
) -> Option<Principal> {
    let hash = hash_token(token);
    let mut found = same(&hash, admin_hash).then_some(Principal::Admin);
    for pool in pools {
        for legacy in &pool.token_hashes {
            if same(legacy, &hash) && found.is_none() {
                found = Some(Principal::Pool {
                    pool: pool.name.clone(),
                    role: Role::Ops,
                    token_id: token_id(legacy),
                });
            }
        }
        for t in &pool.tokens {
            if same(&t.hash, &hash) && found.is_none() {
                found = Some(Principal::Pool {
                    pool: pool.name.clone(),
                    role: t.role,
                    token_id: t.id.clone(),
                });
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_pool_and_unknown() {
        let admin = hash_token("admin-secret-token");
        let token = new_token();
        let (dev_token, dev_record) = issue(Role::Developer, None, 7);
        let pools = vec![
            PoolRecord {
                version: 1,
                name: "a".into(),
                token_hashes: vec![hash_token(&token)],
                tokens: vec![],
                ssh_keys: vec![],
                created_at: 0,
            },
            PoolRecord {
                version: 1,
                name: "b".into(),
                token_hashes: vec![],
                tokens: vec![dev_record.clone()],
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
            Some(Principal::Pool {
                pool: "a".into(),
                role: Role::Ops,
                token_id: token_id(&hash_token(&token)),
            })
        );
        let dev = authenticate(&dev_token, &admin, &pools).expect("developer token");
        assert_eq!(dev.token_id(), dev_record.id);
        assert!(dev.is_developer() && dev.sees("b") && !dev.sees("a"));
        assert!(dev.has(Need::Developer) && !dev.has(Need::Ops) && !dev.has(Need::Admin));
        assert_eq!(authenticate("nope", &admin, &pools), None);
        let ops = authenticate(&token, &admin, &pools).expect("ops token");
        assert!(ops.sees("a") && !ops.sees("b"));
        assert!(ops.has(Need::Ops) && !ops.has(Need::Admin));
        assert!(Principal::Admin.has(Need::Admin));
        assert_ne!(new_token(), new_token());
    }
}
