//! The error codes the agent publishes, each an enum with its stable wire string: `EngineCode`
//! (container engine failures), `LastErrorCode` (`last_error.code` in status znodes, with the
//! retry decision) and `HttpErrorCode` (the `code` of HTTP error bodies, with the HTTP status).
//! Each decision is one exhaustive `match` here, so a typo cannot silently change a retry or a
//! status, and a new code does not compile until it is decided.

use warp::http::StatusCode;

/// Why the container engine failed (from `RuntimeError::code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EngineCode {
    Unavailable,
    ContainerNotFound,
    ImageNotFound,
    NameConflict,
    Refused,
    /// The engine called the container's configuration invalid (HTTP 400): the same spec
    /// will be refused again, so it is not retried.
    RefusedSpec,
    /// A pull could not reach the registry (the pool's proxy, or the center behind it).
    RegistryUnreachable,
    /// A registry refused the node's credentials.
    Unauthorized,
    /// The node's disk filled during a pull.
    DiskFull,
    /// A pull failed otherwise.
    PullFailed,
}

impl EngineCode {
    pub const ALL: [Self; 10] = [
        Self::Unavailable,
        Self::ContainerNotFound,
        Self::ImageNotFound,
        Self::NameConflict,
        Self::Refused,
        Self::RefusedSpec,
        Self::RegistryUnreachable,
        Self::Unauthorized,
        Self::DiskFull,
        Self::PullFailed,
    ];

    /// The wire string (central, the CLI and tests read it).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unavailable => "engine-unavailable",
            Self::ContainerNotFound => "container-not-found",
            Self::ImageNotFound => "image-not-found",
            Self::NameConflict => "name-conflict",
            Self::Refused => "engine-refused",
            Self::RefusedSpec => "engine-refused-spec",
            Self::RegistryUnreachable => "registry-unreachable",
            Self::Unauthorized => "registry-unauthorized",
            Self::DiskFull => "disk-full",
            Self::PullFailed => "pull-failed",
        }
    }
}

/// Why converging a workload stopped: `last_error.code` of its status znode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LastErrorCode {
    /// The spec does not validate, or does not match the znode it is assigned under.
    InvalidSpec,
    /// The assignment znode does not parse.
    InvalidAssignment,
    /// The spec names another pool than this node's.
    WrongPool,
    /// `rich: true` on an image that does not keep the sofa contract.
    NotRichImage,
    /// The spec's volumes differ from the existing data container's.
    VolumesChanged,
    /// The data container vanished while the app exists.
    DataMissing,
    /// supervisord gave up starting the app of a rich container.
    AppFatal,
    /// The agent failed at something of its own (e.g. packing a tar).
    Internal,
    /// The node's kernel cannot wire a network the workload joins (e.g. no VXLAN).
    NetworkUnsupported,
    /// Wiring an interface failed (a netlink or nftables error); retried.
    NetworkFailed,
    /// The container engine failed or refused.
    Engine(EngineCode),
}

impl LastErrorCode {
    pub const ALL: [Self; 20] = [
        Self::InvalidSpec,
        Self::InvalidAssignment,
        Self::WrongPool,
        Self::NotRichImage,
        Self::VolumesChanged,
        Self::DataMissing,
        Self::AppFatal,
        Self::Internal,
        Self::NetworkUnsupported,
        Self::NetworkFailed,
        Self::Engine(EngineCode::Unavailable),
        Self::Engine(EngineCode::ContainerNotFound),
        Self::Engine(EngineCode::ImageNotFound),
        Self::Engine(EngineCode::NameConflict),
        Self::Engine(EngineCode::Refused),
        Self::Engine(EngineCode::RefusedSpec),
        Self::Engine(EngineCode::RegistryUnreachable),
        Self::Engine(EngineCode::Unauthorized),
        Self::Engine(EngineCode::DiskFull),
        Self::Engine(EngineCode::PullFailed),
    ];

    /// The wire string in the status znode.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidSpec => "invalid-spec",
            Self::InvalidAssignment => "invalid-assignment",
            Self::WrongPool => "wrong-pool",
            Self::NotRichImage => "not-rich-image",
            Self::VolumesChanged => "volumes-changed",
            Self::DataMissing => "data-missing",
            Self::AppFatal => "app-fatal",
            Self::Internal => "internal",
            Self::NetworkUnsupported => "network-unsupported",
            Self::NetworkFailed => "network-failed",
            Self::Engine(code) => code.as_str(),
        }
    }

    /// Errors that retrying cannot fix until the spec or the node changes: the workload is
    /// reported `failed` instead of being retried as `pending`.
    pub fn permanent(self) -> bool {
        match self {
            Self::InvalidSpec
            | Self::InvalidAssignment
            | Self::WrongPool
            | Self::NotRichImage
            | Self::VolumesChanged
            | Self::DataMissing
            | Self::NetworkUnsupported
            | Self::Engine(
                EngineCode::ImageNotFound
                | EngineCode::NameConflict
                | EngineCode::RefusedSpec
                | EngineCode::Unauthorized,
            ) => true,
            Self::AppFatal
            | Self::Internal
            | Self::NetworkFailed
            | Self::Engine(
                EngineCode::Unavailable
                | EngineCode::ContainerNotFound
                | EngineCode::Refused
                | EngineCode::RegistryUnreachable
                | EngineCode::DiskFull
                | EngineCode::PullFailed,
            ) => false,
        }
    }
}

impl LastErrorCode {
    /// Errors about the spec itself: the same assignment fails the same way on every attempt,
    /// so a workload that has nothing running waits for a new assignment (or 10 minutes)
    /// instead of cycling through create and remove.
    pub fn waits_for_new_spec(self) -> bool {
        match self {
            Self::InvalidSpec | Self::Engine(EngineCode::RefusedSpec) => true,
            Self::InvalidAssignment
            | Self::WrongPool
            | Self::NotRichImage
            | Self::VolumesChanged
            | Self::DataMissing
            | Self::AppFatal
            | Self::Internal
            | Self::NetworkUnsupported
            | Self::NetworkFailed
            | Self::Engine(
                EngineCode::Unavailable
                | EngineCode::ContainerNotFound
                | EngineCode::ImageNotFound
                | EngineCode::NameConflict
                | EngineCode::Refused
                | EngineCode::RegistryUnreachable
                | EngineCode::Unauthorized
                | EngineCode::DiskFull
                | EngineCode::PullFailed,
            ) => false,
        }
    }
}

impl std::fmt::Display for LastErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `code` of an error answer of the agent's HTTP API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpErrorCode {
    /// No such endpoint, or no such workload on this node.
    NotFound,
    MethodNotAllowed,
    /// A query parameter does not parse.
    BadQuery,
    /// Control endpoints are off (no control token configured).
    Forbidden,
    /// A control request without the right token.
    Unauthorized,
    /// The request body is larger than the endpoint accepts.
    TooLarge,
    /// A deploy package unpacks to more than the agent accepts.
    PackageTooLarge,
    /// A control request that does not parse or validate.
    Invalid,
    /// A deploy package that is not a usable app package.
    InvalidPackage,
    /// Deploy to a workload whose image is not rich.
    NotRich,
    /// The workload's app container is not running.
    NotRunning,
    /// Another deploy to the same workload is under way.
    Busy,
    /// The engine failed during a control operation.
    EngineError,
    /// The agent failed at something of its own.
    Internal,
    /// A plain request to a WebSocket endpoint (the terminal).
    UpgradeRequired,
    /// The engine failed while reading logs (the engine's own code).
    Engine(EngineCode),
}

impl HttpErrorCode {
    pub const ALL: [Self; 25] = [
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::BadQuery,
        Self::Forbidden,
        Self::Unauthorized,
        Self::TooLarge,
        Self::PackageTooLarge,
        Self::Invalid,
        Self::InvalidPackage,
        Self::NotRich,
        Self::NotRunning,
        Self::Busy,
        Self::EngineError,
        Self::Internal,
        Self::UpgradeRequired,
        Self::Engine(EngineCode::Unavailable),
        Self::Engine(EngineCode::ContainerNotFound),
        Self::Engine(EngineCode::ImageNotFound),
        Self::Engine(EngineCode::NameConflict),
        Self::Engine(EngineCode::Refused),
        Self::Engine(EngineCode::RefusedSpec),
        Self::Engine(EngineCode::RegistryUnreachable),
        Self::Engine(EngineCode::Unauthorized),
        Self::Engine(EngineCode::DiskFull),
        Self::Engine(EngineCode::PullFailed),
    ];

    /// The wire string in the error body (central relays it).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not-found",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::BadQuery => "bad-query",
            Self::Forbidden => "forbidden",
            Self::Unauthorized => "unauthorized",
            Self::TooLarge => "too-large",
            Self::PackageTooLarge => "package-too-large",
            Self::Invalid => "invalid",
            Self::InvalidPackage => "invalid-package",
            Self::NotRich => "not-rich",
            Self::NotRunning => "not-running",
            Self::Busy => "busy",
            Self::EngineError => "engine-error",
            Self::Internal => "internal",
            Self::UpgradeRequired => "upgrade-required",
            Self::Engine(code) => code.as_str(),
        }
    }

    /// The HTTP status of an answer with this code.
    pub fn status(self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::BadQuery => StatusCode::BAD_REQUEST,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::TooLarge | Self::PackageTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Invalid | Self::InvalidPackage => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotRich | Self::NotRunning | Self::Busy => StatusCode::CONFLICT,
            Self::EngineError | Self::Engine(_) => StatusCode::BAD_GATEWAY,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::UpgradeRequired => StatusCode::UPGRADE_REQUIRED,
        }
    }
}

impl std::fmt::Display for HttpErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn wire_strings_are_unique_and_every_variant_is_listed() {
        let engine: BTreeSet<_> = EngineCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(engine.len(), EngineCode::ALL.len());
        let last: BTreeSet<_> = LastErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(last.len(), LastErrorCode::ALL.len());
        let http: BTreeSet<_> = HttpErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(http.len(), HttpErrorCode::ALL.len());
        for e in EngineCode::ALL {
            assert!(LastErrorCode::ALL.contains(&LastErrorCode::Engine(e)));
            assert!(HttpErrorCode::ALL.contains(&HttpErrorCode::Engine(e)));
        }
    }

    /// The codes and retry decisions as they were when they were matched strings; the status
    /// znodes central, the CLI and the tests read keep exactly these.
    #[test]
    fn last_error_codes_keep_their_strings_and_retry_decisions() {
        let expected = [
            ("invalid-spec", true),
            ("invalid-assignment", true),
            ("wrong-pool", true),
            ("not-rich-image", true),
            ("volumes-changed", true),
            ("data-missing", true),
            ("app-fatal", false),
            ("internal", false),
            ("network-unsupported", true),
            ("network-failed", false),
            ("engine-unavailable", false),
            ("container-not-found", false),
            ("image-not-found", true),
            ("name-conflict", true),
            ("engine-refused", false),
            ("engine-refused-spec", true),
            ("registry-unreachable", false),
            ("registry-unauthorized", true),
            ("disk-full", false),
            ("pull-failed", false),
        ];
        let actual: Vec<(&str, bool)> = LastErrorCode::ALL
            .iter()
            .map(|c| (c.as_str(), c.permanent()))
            .collect();
        assert_eq!(actual, expected);
    }

    #[test]
    fn only_spec_errors_wait_for_a_new_spec_and_they_are_permanent() {
        let waiting: Vec<&str> = LastErrorCode::ALL
            .iter()
            .filter(|c| c.waits_for_new_spec())
            .map(|c| c.as_str())
            .collect();
        assert_eq!(waiting, ["invalid-spec", "engine-refused-spec"]);
        assert!(LastErrorCode::ALL
            .iter()
            .filter(|c| c.waits_for_new_spec())
            .all(|c| c.permanent()));
    }

    /// The HTTP statuses as they were (plus the unpacked-size refusal); `internal` is a 500
    /// everywhere now (a control operation's answered 502 before).
    #[test]
    fn http_codes_keep_their_strings_and_statuses() {
        let expected = [
            ("not-found", 404),
            ("method-not-allowed", 405),
            ("bad-query", 400),
            ("forbidden", 403),
            ("unauthorized", 401),
            ("too-large", 413),
            ("package-too-large", 413),
            ("invalid", 422),
            ("invalid-package", 422),
            ("not-rich", 409),
            ("not-running", 409),
            ("busy", 409),
            ("engine-error", 502),
            ("internal", 500),
            ("upgrade-required", 426),
            ("engine-unavailable", 502),
            ("container-not-found", 502),
            ("image-not-found", 502),
            ("name-conflict", 502),
            ("engine-refused", 502),
            ("engine-refused-spec", 502),
            ("registry-unreachable", 502),
            ("registry-unauthorized", 502),
            ("disk-full", 502),
            ("pull-failed", 502),
        ];
        let actual: Vec<(&str, u16)> = HttpErrorCode::ALL
            .iter()
            .map(|c| (c.as_str(), c.status().as_u16()))
            .collect();
        assert_eq!(actual, expected);
    }
}
