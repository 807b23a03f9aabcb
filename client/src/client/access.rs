//! `CentralClient` methods of who may do what: a pool's tokens with their roles, and the pool's
//! audit log of terminal and exec sessions.

use caas_api::central::TokenResponse;
use caas_api::roles::{AuditEntry, CreateTokenRequest, TokenView};
use reqwest::Method;

use super::CentralClient;
use crate::error::ClientError;

/// Which audit entries `CentralClient::audit` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only the sessions of this container.
    pub container: Option<String>,
    /// At most this many, the newest [default: central's].
    pub limit: Option<u32>,
}

impl CentralClient {
    /// Issues a token of `req.role` for a pool; the answer holds the token (shown only this
    /// once), its public id and its role.
    pub async fn create_token(
        &self,
        pool: &str,
        req: &CreateTokenRequest,
    ) -> Result<TokenResponse, ClientError> {
        let (_, answer) = self
            .send(Method::POST, &["v1", "pools", pool, "tokens"], Some(req))
            .await?;
        Ok(answer)
    }

    /// The pool's tokens (ids, roles and labels; never the tokens themselves).
    pub async fn list_tokens(&self, pool: &str) -> Result<Vec<TokenView>, ClientError> {
        self.get(&["v1", "pools", pool, "tokens"]).await
    }

    /// Revokes a token by its id (`tok-...`).
    pub async fn delete_token(&self, pool: &str, id: &str) -> Result<(), ClientError> {
        self.delete(self.url(&["v1", "pools", pool, "tokens", id])?)
            .await
    }

    /// The pool's audit entries, oldest first.
    pub async fn audit(
        &self,
        pool: &str,
        query: &AuditQuery,
    ) -> Result<Vec<AuditEntry>, ClientError> {
        let mut url = self.url(&["v1", "pools", pool, "audit"])?;
        {
            let mut pairs = url.query_pairs_mut();
            if let Some(container) = &query.container {
                pairs.append_pair("container", container);
            }
            if let Some(limit) = query.limit {
                pairs.append_pair("limit", &limit.to_string());
            }
        }
        // `query_pairs_mut` leaves a bare `?` behind when nothing was appended.
        if url.query() == Some("") {
            url.set_query(None);
        }
        let (_, entries) = self.send_url(Method::GET, url, None::<&()>).await?;
        Ok(entries)
    }
}
