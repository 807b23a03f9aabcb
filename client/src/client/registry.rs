//! `CentralClient` methods of the registry proxy routes.

use caas_api::image::{AddRegistryProxyRequest, RegistryProxyView};
use reqwest::Method;

use super::CentralClient;
use crate::error::ClientError;

impl CentralClient {
    /// Declares a registry proxy of the pool.
    pub async fn add_registry_proxy(
        &self,
        pool: &str,
        req: &AddRegistryProxyRequest,
    ) -> Result<RegistryProxyView, ClientError> {
        let (_, view) = self
            .send(
                Method::POST,
                &["v1", "pools", pool, "registry-proxies"],
                Some(req),
            )
            .await?;
        Ok(view)
    }

    pub async fn list_registry_proxies(
        &self,
        pool: &str,
    ) -> Result<Vec<RegistryProxyView>, ClientError> {
        self.get(&["v1", "pools", pool, "registry-proxies"]).await
    }

    pub async fn remove_registry_proxy(&self, pool: &str, name: &str) -> Result<(), ClientError> {
        self.delete(self.url(&["v1", "pools", pool, "registry-proxies", name])?)
            .await
    }
}

impl CentralClient {
    /// Starts a prewarm: the pool's nodes matching the constraints pull the image.
    pub async fn create_prewarm(
        &self,
        pool: &str,
        req: &caas_api::image::CreatePrewarmRequest,
    ) -> Result<caas_api::image::PrewarmView, ClientError> {
        let (_, view) = self
            .send(Method::POST, &["v1", "pools", pool, "prewarms"], Some(req))
            .await?;
        Ok(view)
    }

    pub async fn get_prewarm(
        &self,
        pool: &str,
        id: &str,
    ) -> Result<caas_api::image::PrewarmView, ClientError> {
        self.get(&["v1", "pools", pool, "prewarms", id]).await
    }

    pub async fn list_prewarms(
        &self,
        pool: &str,
    ) -> Result<Vec<caas_api::image::PrewarmView>, ClientError> {
        self.get(&["v1", "pools", pool, "prewarms"]).await
    }

    pub async fn delete_prewarm(&self, pool: &str, id: &str) -> Result<(), ClientError> {
        self.delete(self.url(&["v1", "pools", pool, "prewarms", id])?)
            .await
    }
}

impl CentralClient {
    /// Sets a new image for a container or every replica of an app; returns their records.
    pub async fn set_image(
        &self,
        pool: &str,
        name: &str,
        image: &str,
    ) -> Result<Vec<caas_api::central::ContainerView>, ClientError> {
        let req = caas_api::image::SetImageRequest {
            image: image.to_string(),
        };
        let (_, views) = self
            .send(
                Method::PUT,
                &["v1", "pools", pool, "containers", name, "image"],
                Some(&req),
            )
            .await?;
        Ok(views)
    }
}
