//! The console's browser-facing protections: the headers every console response carries
//! (a strict Content-Security-Policy, no framing, no sniffing, no referrer, no caching), the
//! cookies it sets, constant-time comparison of CSRF tokens, and the same-origin check of
//! state-changing requests and WebSockets.

use warp::http::header::{self, HeaderValue};

use super::Response;

/// No inline script or style anywhere: scripts, styles, images, fonts and connections (fetch,
/// WebSocket) come from this central only.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; font-src 'self'; form-action 'self'; \
                       frame-ancestors 'none'; base-uri 'none'";

/// The session cookie: HttpOnly, SameSite=Strict, only sent to `/console`.
pub const SESSION_COOKIE: &str = "caas_session";
/// The login form's double-submit cookie.
pub const LOGIN_COOKIE: &str = "caas_login_csrf";

/// Adds the console's security headers to a response.
pub fn harden(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A `Set-Cookie` value for a console cookie (`value` empty: deletes it).
pub fn cookie(name: &str, value: &str) -> String {
    let expiry = if value.is_empty() { "; Max-Age=0" } else { "" };
    format!("{name}={value}; HttpOnly; SameSite=Strict; Path=/console{expiry}")
}

/// Appends a `Set-Cookie` header.
pub fn set_cookie(response: &mut Response, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Compares two secrets without an early exit on the first differing byte.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.is_empty() || a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a state-changing request may proceed: it comes from one of this central's own pages.
/// Browsers say so in `Sec-Fetch-Site` (`same-origin`); with `Referrer-Policy: no-referrer`
/// they send `Origin: null` on form posts, so a `null` Origin passes only with that header.
/// Without `Sec-Fetch-Site` (an old browser or not a browser), an `Origin`, if sent, must be
/// this central (`Host`). The CSRF token is required in every case.
pub fn origin_allowed(origin: Option<&str>, host: Option<&str>, fetch_site: Option<&str>) -> bool {
    if let Some(site) = fetch_site {
        if !site.eq_ignore_ascii_case("same-origin") {
            return false;
        }
        if origin == Some("null") {
            return true;
        }
    }
    crate::api::terminal::same_origin(origin, host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc123", "abc123"));
        assert!(!same_secret("abc123", "abc124"));
        assert!(!same_secret("abc123", "abc12"));
        assert!(!same_secret("", ""), "an empty token never matches");
    }

    #[test]
    fn cookies_have_the_attributes() {
        assert_eq!(
            cookie(SESSION_COOKIE, "ab"),
            "caas_session=ab; HttpOnly; SameSite=Strict; Path=/console"
        );
        assert!(cookie(SESSION_COOKIE, "").ends_with("Max-Age=0"));
    }

    #[test]
    fn origins_of_posts() {
        let host = Some("c:8080");
        assert!(
            origin_allowed(None, host, None),
            "no Origin: not a cross-site browser request"
        );
        assert!(origin_allowed(Some("http://c:8080"), host, None));
        assert!(origin_allowed(
            Some("http://c:8080"),
            host,
            Some("same-origin")
        ));
        assert!(!origin_allowed(Some("http://evil.example"), host, None));
        assert!(!origin_allowed(
            Some("http://evil.example"),
            host,
            Some("same-origin")
        ));
        assert!(!origin_allowed(Some("null"), host, None));
        // A form post of our own page under `Referrer-Policy: no-referrer`.
        assert!(origin_allowed(Some("null"), host, Some("same-origin")));
        for site in ["cross-site", "same-site", "none"] {
            assert!(!origin_allowed(Some("null"), host, Some(site)), "{site}");
            assert!(!origin_allowed(None, host, Some(site)), "{site}");
        }
    }

    #[test]
    fn every_response_is_hardened() {
        let r = harden(warp::reply::Reply::into_response(warp::reply::html("x")));
        let h = r.headers();
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], CSP);
        assert!(!CSP.contains("unsafe"));
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
    }
}
