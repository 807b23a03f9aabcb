//! API errors and their one mapping to HTTP: a status, a stable machine-readable code, a message
//! that says what to do, and the field at fault.

use caas_api::central::ErrorBody;
use caas_api::ValidationError;
use warp::http::StatusCode;
use warp::Reply;

use crate::store::StoreError;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

/// Refusals raised in a filter (before a body is read) travel as warp rejections.
impl warp::reject::Reject for ApiError {}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "invalid",
            message: message.into(),
            field: Some(field.into()),
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", message)
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or unknown bearer token: send `Authorization: Bearer <token>` (caas CLI: set CAAS_TOKEN)",
        )
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
    pub fn unschedulable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unschedulable", message)
    }

    pub fn into_response(self) -> warp::reply::Response {
        let body = ErrorBody {
            code: self.code.to_string(),
            message: self.message,
            field: self.field,
        };
        warp::reply::with_status(warp::reply::json(&body), self.status).into_response()
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        Self::invalid(e.field.clone(), e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NoSession => Self::unavailable(e.to_string()),
            StoreError::Conflict { .. } => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "contention",
                format!("too many concurrent changes, retry: {e}"),
            ),
            other => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                other.to_string(),
            ),
        }
    }
}
