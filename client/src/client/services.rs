//! `CentralClient` methods of the DNS and load-balancer routes.

use caas_api::service::{
    AddBackendRequest, CreateDnsRequest, CreateLbRequest, DnsSpec, LbSpec, LbView,
};
use reqwest::Method;

use super::CentralClient;
use crate::error::ClientError;

impl CentralClient {
    /// Creates a network's DNS service (one per network).
    pub async fn create_dns(
        &self,
        pool: &str,
        req: &CreateDnsRequest,
    ) -> Result<DnsSpec, ClientError> {
        let (_, spec) = self
            .send(Method::POST, &["v1", "pools", pool, "dns"], Some(req))
            .await?;
        Ok(spec)
    }

    pub async fn list_dns(&self, pool: &str) -> Result<Vec<DnsSpec>, ClientError> {
        self.get(&["v1", "pools", pool, "dns"]).await
    }

    pub async fn delete_dns(&self, pool: &str, name: &str) -> Result<(), ClientError> {
        self.delete(self.url(&["v1", "pools", pool, "dns", name])?)
            .await
    }

    /// Creates a load balancer; central allocates the VIP when `req.vip` is `None`.
    pub async fn create_lb(
        &self,
        pool: &str,
        req: &CreateLbRequest,
    ) -> Result<LbSpec, ClientError> {
        let (_, spec) = self
            .send(Method::POST, &["v1", "pools", pool, "lbs"], Some(req))
            .await?;
        Ok(spec)
    }

    pub async fn list_lbs(&self, pool: &str) -> Result<Vec<LbView>, ClientError> {
        self.get(&["v1", "pools", pool, "lbs"]).await
    }

    pub async fn get_lb(&self, pool: &str, name: &str) -> Result<LbView, ClientError> {
        self.get(&["v1", "pools", pool, "lbs", name]).await
    }

    /// Removes a load balancer and releases its VIP.
    pub async fn delete_lb(&self, pool: &str, name: &str) -> Result<(), ClientError> {
        self.delete(self.url(&["v1", "pools", pool, "lbs", name])?)
            .await
    }

    pub async fn add_lb_backend(
        &self,
        pool: &str,
        lb: &str,
        req: &AddBackendRequest,
    ) -> Result<LbSpec, ClientError> {
        let (_, spec) = self
            .send(
                Method::POST,
                &["v1", "pools", pool, "lbs", lb, "backends"],
                Some(req),
            )
            .await?;
        Ok(spec)
    }

    pub async fn remove_lb_backend(
        &self,
        pool: &str,
        lb: &str,
        container: &str,
    ) -> Result<LbSpec, ClientError> {
        let (_, spec) = self
            .send(
                Method::DELETE,
                &["v1", "pools", pool, "lbs", lb, "backends", container],
                None::<&()>,
            )
            .await?;
        Ok(spec)
    }
}
