//! The one place where a [`CentralError`] becomes HTTP: its status, its stable machine-readable
//! code, and the `{code, message, field}` body.

use caas_api::central::ErrorBody;
use warp::http::StatusCode;
use warp::Reply;

use crate::error::{CentralError, ConflictKind};

/// Refusals raised in a filter (before a body is read) travel as warp rejections.
#[derive(Debug)]
pub struct Refused(pub CentralError);

impl warp::reject::Reject for Refused {}

/// The HTTP status of an error.
pub fn status(e: &CentralError) -> StatusCode {
    match e {
        CentralError::Invalid { .. } | CentralError::BadRequest(_) => StatusCode::BAD_REQUEST,
        CentralError::Unauthorized => StatusCode::UNAUTHORIZED,
        CentralError::Forbidden(_) => StatusCode::FORBIDDEN,
        CentralError::NotFound(_) => StatusCode::NOT_FOUND,
        CentralError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        CentralError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        CentralError::Conflict { .. } => StatusCode::CONFLICT,
        CentralError::Unschedulable(_) => StatusCode::UNPROCESSABLE_ENTITY,
        CentralError::Contention(_) | CentralError::Unavailable(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        CentralError::Agent { status, .. } => {
            StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
        }
        CentralError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The stable code clients match on.
pub fn code(e: &CentralError) -> &'static str {
    match e {
        CentralError::Invalid { .. } => "invalid",
        CentralError::BadRequest(_) => "bad-request",
        CentralError::Unauthorized => "unauthorized",
        CentralError::Forbidden(_) => "forbidden",
        CentralError::NotFound(_) => "not-found",
        CentralError::MethodNotAllowed => "method-not-allowed",
        CentralError::TooLarge(_) => "too-large",
        CentralError::Conflict { kind, .. } => match kind {
            ConflictKind::Exists => "exists",
            ConflictKind::ExistsDifferent => "exists-different",
            ConflictKind::HasData => "has-data",
            ConflictKind::NodeReady => "node-ready",
            ConflictKind::NotEmpty => "not-empty",
            ConflictKind::AddressTaken => "address-taken",
            ConflictKind::VniTaken => "vni-taken",
            ConflictKind::VlanTaken => "vlan-taken",
            ConflictKind::Exhausted => "exhausted",
            ConflictKind::PortTaken => "port-taken",
        },
        CentralError::Unschedulable(_) => "unschedulable",
        CentralError::Contention(_) => "contention",
        CentralError::Unavailable(_) => "unavailable",
        CentralError::Agent { code, .. } => code.as_str(),
        CentralError::Internal(_) => "internal",
    }
}

/// The error as a response.
pub fn error_response(e: CentralError) -> warp::reply::Response {
    let status = status(&e);
    let body = ErrorBody {
        code: code(&e).to_string(),
        field: match &e {
            CentralError::Invalid { field, .. } => Some(field.clone()),
            _ => None,
        },
        message: e.to_string(),
    };
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::AgentCode;

    #[test]
    fn every_error_has_its_status_and_code() {
        let cases = [
            (CentralError::invalid("name", "bad"), 400, "invalid"),
            (CentralError::Unauthorized, 401, "unauthorized"),
            (CentralError::not_found("x"), 404, "not-found"),
            (
                CentralError::conflict(ConflictKind::ExistsDifferent, "x"),
                409,
                "exists-different",
            ),
            (CentralError::unschedulable("x"), 422, "unschedulable"),
            (CentralError::contention("x"), 503, "contention"),
            (CentralError::unavailable("x"), 503, "unavailable"),
            (
                CentralError::Agent {
                    status: 409,
                    code: AgentCode::Busy,
                    message: "x".into(),
                },
                409,
                "busy",
            ),
            (
                CentralError::Agent {
                    status: 500,
                    code: AgentCode::parse("brand-new"),
                    message: "x".into(),
                },
                500,
                "agent-error",
            ),
            (CentralError::internal("x"), 500, "internal"),
        ];
        for (e, want_status, want_code) in cases {
            assert_eq!(status(&e).as_u16(), want_status, "{e:?}");
            assert_eq!(code(&e), want_code, "{e:?}");
        }
    }

    #[test]
    fn a_field_error_names_the_field_in_the_body() {
        let response = error_response(CentralError::invalid("instances", "0 is out of range"));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
}
