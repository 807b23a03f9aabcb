//! The web console through the real warp routes on the in-memory store: login (a wrong or
//! revoked token is a 401 page without a hint, failed logins are rate limited per address, a
//! good one sets an HttpOnly SameSite=Strict session cookie), the security headers on every
//! answer, CSRF and Origin checks on every state-changing request, a developer sees no ops
//! buttons and is refused (403) when posting them anyway, another pool's container is 404, a
//! WebSocket from a foreign origin is refused, a revoked token ends its session, logout ends
//! it too, and a missing xterm.js is explained on the terminal page.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use caas_central::agent_link::AgentLink;
use caas_central::console::{Console, ConsoleConfig, CSP};
use caas_central::state::Central;
use serde_json::json;
use support::{container, node_info, World, ADMIN};
use warp::http::Response;
use warp::test::RequestBuilder;

const HOST: &str = "central.test:8080";
const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ops";

type Reply = Pin<Box<dyn Future<Output = Response<bytes::Bytes>> + Send>>;

/// A central instance with the console, driven like a browser would.
struct Web {
    routes: Arc<dyn Fn(RequestBuilder) -> Reply + Send + Sync>,
    console: Arc<Console>,
}

impl Web {
    fn new(world: &World, config: ConsoleConfig) -> Self {
        let central = Central::new(Arc::new(world.store.handle()), ADMIN);
        let console = Console::new(config);
        let routes = caas_central::api::routes_with_console(
            central,
            Arc::new(AgentLink::new(None)),
            console.clone(),
        );
        Self {
            routes: Arc::new(move |request: RequestBuilder| {
                let routes = routes.clone();
                Box::pin(async move { request.reply(&routes).await })
            }),
            console,
        }
    }

    async fn send(&self, request: RequestBuilder) -> Response<bytes::Bytes> {
        (self.routes)(request.header("host", HOST)).await
    }

    async fn get(&self, path: &str, session: Option<&str>) -> Response<bytes::Bytes> {
        let mut r = warp::test::request().method("GET").path(path);
        if let Some(s) = session {
            r = r.header("cookie", format!("caas_session={s}"));
        }
        self.send(r).await
    }

    async fn post(
        &self,
        path: &str,
        cookie: &str,
        body: &str,
        origin: Option<&str>,
    ) -> Response<bytes::Bytes> {
        self.post_from(path, cookie, body, origin, None).await
    }

    /// A post with `Sec-Fetch-Site: site`, as browsers send it.
    async fn post_from(
        &self,
        path: &str,
        cookie: &str,
        body: &str,
        origin: Option<&str>,
        site: Option<&str>,
    ) -> Response<bytes::Bytes> {
        let mut r = warp::test::request()
            .method("POST")
            .path(path)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", cookie)
            .body(body);
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        if let Some(site) = site {
            r = r.header("sec-fetch-site", site);
        }
        self.send(r).await
    }

    /// The login page's double-submit value (cookie and hidden field are the same).
    async fn login_form(&self) -> String {
        let page = self.get("/console/login", None).await;
        assert_eq!(page.status(), 200);
        let value = set_cookie(&page, "caas_login_csrf").expect("login cookie");
        assert!(text(&page).contains(&format!("name=\"csrf\" value=\"{value}\"")));
        value
    }

    /// Logs in from `addr`; returns the response.
    async fn login_from(&self, token: &str, addr: [u8; 4]) -> Response<bytes::Bytes> {
        let csrf = self.login_form().await;
        let r = warp::test::request()
            .method("POST")
            .path("/console/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", format!("caas_login_csrf={csrf}"))
            .header("origin", format!("http://{HOST}"))
            .remote_addr(SocketAddr::from((addr, 40000)))
            .body(format!("token={}&csrf={csrf}", urlencode(token)));
        self.send(r).await
    }

    /// Logs in; returns the session id.
    async fn login(&self, token: &str) -> String {
        let r = self.login_from(token, [10, 0, 0, 1]).await;
        assert_eq!(r.status(), 303, "{}", text(&r));
        assert_eq!(r.headers()["location"], "/console/");
        set_cookie(&r, "caas_session").expect("session cookie")
    }

    /// The session's CSRF token, from the logout form of any page.
    async fn csrf(&self, session: &str, page: &str) -> String {
        let r = self.get(page, Some(session)).await;
        assert_eq!(r.status(), 200, "{}", text(&r));
        let html = text(&r);
        let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
        html[at..at + 64].to_string()
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn text(r: &Response<bytes::Bytes>) -> String {
    String::from_utf8_lossy(r.body()).into_owned()
}

/// The value of cookie `name` set by a response, if any.
fn set_cookie(r: &Response<bytes::Bytes>, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or("").to_string())
}

fn full_set_cookie(r: &Response<bytes::Bytes>, name: &str) -> String {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or("")
        .to_string()
}

fn assert_hardened(r: &Response<bytes::Bytes>, what: &str) {
    let h = r.headers();
    assert_eq!(
        h.get("content-security-policy")
            .map(|v| v.to_str().unwrap()),
        Some(CSP),
        "{what}"
    );
    assert_eq!(h["x-frame-options"], "DENY", "{what}");
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
    assert_eq!(h["cache-control"], "no-store", "{what}");
}

/// A pool `p` (with an SSH key, a node, a plain and a rich container), its ops token and a
/// developer token; and a pool `q` with a container.
async fn world() -> (World, String, String, String) {
    let mut world = World::new();
    world.register(node_info("n1", "p", 4000, 8 << 30));
    world.register(node_info("n2", "q", 4000, 8 << 30));
    let a = world.instance();
    let ops = world.pool(&a, "p").await;
    let q_ops = world.pool(&a, "q").await;
    let (status, body) = a
        .call(
            "PUT",
            "/v1/pools/p/ssh-keys",
            &ops,
            Some(json!({"ssh_keys": [KEY]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = a
        .call(
            "POST",
            "/v1/pools/p/tokens",
            &ops,
            Some(json!({"role": "developer"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let dev = body["token"].as_str().unwrap().to_string();
    for (pool, token, spec) in [
        ("p", &ops, container("web", "100m", "64Mi")),
        (
            "p",
            &ops,
            json!({"name": "sofa", "image": "caas/sofa-base:latest", "rich": true}),
        ),
        ("q", &q_ops, container("secret", "100m", "64Mi")),
    ] {
        let (status, body) = a
            .call(
                "POST",
                &format!("/v1/pools/{pool}/containers"),
                token,
                Some(spec),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    (world, ops, dev, q_ops)
}

#[tokio::test]
async fn a_wrong_or_revoked_token_is_a_401_page_without_a_hint_and_failures_are_rate_limited() {
    let (world, ops, _dev, _) = world().await;
    let web = Web::new(&world, ConsoleConfig::default());
    let a = world.instance();
    // A token of the right shape but unknown, garbage, and a revoked one: one answer.
    let (status, body) = a
        .call(
            "POST",
            "/v1/pools/p/tokens",
            &ops,
            Some(json!({"role": "developer"})),
        )
        .await;
    assert_eq!(status, 201);
    let revoked = body["token"].as_str().unwrap().to_string();
    let id = body["id"].as_str().unwrap().to_string();
    let (status, _) = a
        .call("DELETE", &format!("/v1/pools/p/tokens/{id}"), &ops, None)
        .await;
    assert_eq!(status, 204);
    let mut pages = Vec::new();
    // The ops token with its last digit changed.
    let last = if ops.ends_with('0') { '1' } else { '0' };
    let near = format!("{}{last}", &ops[..ops.len() - 1]);
    assert_ne!(near, ops);
    for (i, token) in [near, "nope".into(), revoked].iter().enumerate() {
        let r = web.login_from(token, [10, 0, 1, i as u8]).await;
        assert_eq!(r.status(), 401, "{}", text(&r));
        assert!(set_cookie(&r, "caas_session").is_none());
        assert_hardened(&r, "401 login page");
        let html = text(&r);
        assert!(html.contains("The token was not accepted."), "{html}");
        for hint in ["revoked", "pool", "expired", "unknown", "hash"] {
            assert!(
                !html.to_lowercase().contains(&format!(">{hint}")),
                "{hint} in {html}"
            );
        }
        pages.push(html.replace(&set_cookie(&r, "caas_login_csrf").unwrap(), "X"));
    }
    assert!(
        pages.windows(2).all(|w| w[0] == w[1]),
        "the same page for every wrong token"
    );

    // Five failures a minute per address; the sixth attempt is refused even with a good token.
    for _ in 0..5 {
        assert_eq!(web.login_from("wrong", [10, 0, 0, 9]).await.status(), 401);
    }
    let r = web.login_from(&ops, [10, 0, 0, 9]).await;
    assert_eq!(r.status(), 429, "{}", text(&r));
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    assert!(text(&r).contains("Too many login attempts"));
    // Another address is not affected.
    assert_eq!(web.login_from(&ops, [10, 0, 0, 10]).await.status(), 303);
}

#[tokio::test]
async fn successful_logins_per_token_are_limited_too() {
    let (world, ops, _, _) = world().await;
    let config = ConsoleConfig {
        logins_per_token: 3,
        ..Default::default()
    };
    let web = Web::new(&world, config);
    for i in 0..3u8 {
        assert_eq!(web.login_from(&ops, [10, 0, 2, i]).await.status(), 303);
    }
    let r = web.login_from(&ops, [10, 0, 2, 9]).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(web.console.session_count(), 3);
}

#[tokio::test]
async fn login_sets_a_strict_http_only_cookie_and_every_answer_is_hardened() {
    let (world, ops, dev, _) = world().await;
    let web = Web::new(&world, ConsoleConfig::default());

    let login = web.get("/console/login", None).await;
    assert_hardened(&login, "login page");
    let form = text(&login);
    assert!(
        form.contains("method=\"post\" action=\"/console/login\""),
        "{form}"
    );
    assert!(
        form.contains("type=\"password\" id=\"token\" name=\"token\""),
        "{form}"
    );
    assert!(
        !form.contains("<script>") && !form.contains("style="),
        "no inline script or style"
    );
    assert_eq!(
        full_set_cookie(&login, "caas_login_csrf")
            .split_once(';')
            .unwrap()
            .1,
        " HttpOnly; SameSite=Strict; Path=/console"
    );

    let r = web.login_from(&dev, [10, 0, 3, 1]).await;
    assert_eq!(r.status(), 303, "{}", text(&r));
    assert_hardened(&r, "login redirect");
    let cookie = full_set_cookie(&r, "caas_session");
    let (value, attributes) = cookie.split_once(';').unwrap();
    let id = value.strip_prefix("caas_session=").unwrap();
    assert_eq!(id.len(), 64, "256 random bits in hex");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(attributes, " HttpOnly; SameSite=Strict; Path=/console");
    assert!(!cookie.contains(&dev), "the token never leaves the server");
    assert_eq!(
        full_set_cookie(&r, "caas_login_csrf"),
        "caas_login_csrf=; HttpOnly; SameSite=Strict; Path=/console; Max-Age=0"
    );

    // A developer lands on its pool; the admin on the pool list.
    let index = web.get("/console/", Some(id)).await;
    assert_eq!(index.status(), 303);
    assert_eq!(index.headers()["location"], "/console/pools/p");
    let admin = web.login(ADMIN).await;
    assert_eq!(
        web.get("/console/", Some(&admin)).await.headers()["location"],
        "/console/pools"
    );
    let pools = web.get("/console/pools", Some(&admin)).await;
    assert!(text(&pools).contains("/console/pools/q"));

    let ops_session = web.login(&ops).await;
    for (path, session) in [
        ("/console/pools/p", Some(id)),
        ("/console/pools/p/containers/web", Some(id)),
        ("/console/pools/p/nodes", Some(ops_session.as_str())),
        ("/console/pools/q", Some(id)),
        ("/console/pools/p/containers/web/terminal", Some(id)),
        ("/console/static/console.js", None),
        ("/console/static/console.css", None),
        ("/console/static/nope.js", None),
        ("/console/pools/p", None),
        ("/console/pools/p/containers/web/log-files", None),
    ] {
        let r = web.get(path, session).await;
        assert_hardened(&r, path);
    }
    // Refusals of the routes' own filters are console pages with the headers too.
    for (request, status) in [
        (warp::test::request().path("/console/nope"), 404),
        (warp::test::request().path("/console/logout"), 405),
        (
            warp::test::request()
                .path("/console/pools/p/containers/web/logs?bogus=1")
                .header("cookie", format!("caas_session={id}")),
            400,
        ),
        (
            warp::test::request()
                .method("POST")
                .path("/console/login")
                .body("x".repeat(9000)),
            413,
        ),
    ] {
        let r = web.send(request).await;
        assert_eq!(r.status(), status, "{}", text(&r));
        assert_hardened(&r, "a refusal");
    }
    assert_eq!(
        web.get("/console", Some(id)).await.headers()["location"],
        "/console/pools/p"
    );
    // Outside /console the API answers as before.
    let r = web.get("/v1/nope", None).await;
    assert_eq!(r.status(), 404);
    assert!(!r.headers().contains_key("content-security-policy"));
    let js = web.get("/console/static/console.js", None).await;
    assert_eq!(
        js.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    // Without a session a page sends the browser to the login.
    let r = web.get("/console/pools/p", None).await;
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["location"].to_str().unwrap()
        ),
        (303, "/console/login")
    );
    let r = web.get("/console/pools/p", Some(&"0".repeat(64))).await;
    assert_eq!(r.status(), 303);
    // The container list shows state, node, programs; the developer sees no nodes link.
    let list = text(&web.get("/console/pools/p", Some(id)).await);
    assert!(
        list.contains("data-name=\"web\"") && list.contains("data-name=\"sofa\""),
        "{list}"
    );
    assert!(list.contains("<td class=\"node\">n1</td>"), "{list}");
    assert!(
        !list.contains("/nodes\""),
        "developers have no nodes page link"
    );
    assert_eq!(
        web.get("/console/pools/p/nodes", Some(id)).await.status(),
        403
    );
    let nodes = text(&web.get("/console/pools/p/nodes", Some(&ops_session)).await);
    assert!(
        nodes.contains("<td>n1</td>") && !nodes.contains("n2"),
        "{nodes}"
    );
}

#[tokio::test]
async fn state_changing_posts_need_the_csrf_token_and_this_origin() {
    let (world, ops, _, _) = world().await;
    let web = Web::new(&world, ConsoleConfig::default());
    let session = web.login(&ops).await;
    let csrf = web.csrf(&session, "/console/pools/p").await;
    let cookie = format!("caas_session={session}");
    let this = format!("http://{HOST}");
    let before = world.store.dump();
    for path in [
        "/console/pools/p/containers/web/delete",
        "/console/pools/p/containers/sofa/restart-app",
        "/console/logout",
    ] {
        // No token, a wrong one, the right one from another site's page.
        for (body, origin) in [
            (String::new(), Some(this.as_str())),
            (format!("csrf={}", "0".repeat(64)), Some(this.as_str())),
            (format!("csrf={}", &csrf[..63]), None),
            (format!("csrf={csrf}"), Some("http://evil.example")),
            (format!("csrf={csrf}"), Some("null")),
        ] {
            let r = web.post(path, &cookie, &body, origin).await;
            assert_eq!(r.status(), 403, "{path} {body} {origin:?}: {}", text(&r));
            assert_hardened(&r, path);
        }
        // What browsers say of a request made by another site's page.
        for site in ["cross-site", "same-site"] {
            let r = web
                .post_from(
                    path,
                    &cookie,
                    &format!("csrf={csrf}"),
                    Some("null"),
                    Some(site),
                )
                .await;
            assert_eq!(r.status(), 403, "{path} from {site}");
        }
        // A second csrf field cannot sneak one past the first.
        let r = web
            .post(path, &cookie, &format!("csrf=x&csrf={csrf}"), None)
            .await;
        assert_eq!(r.status(), 400);
    }
    assert_eq!(world.store.dump(), before, "nothing was changed");
    assert_eq!(web.console.session_count(), 1, "still logged in");
    // The header works as well as the field.
    let r = web
        .send(
            warp::test::request()
                .method("POST")
                .path("/console/pools/p/containers/web/delete")
                .header("cookie", &cookie)
                .header("x-csrf-token", &csrf)
                // Chromium's form posts under `Referrer-Policy: no-referrer`.
                .header("origin", "null")
                .header("sec-fetch-site", "same-origin")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(""),
        )
        .await;
    assert_eq!(r.status(), 303, "{}", text(&r));
    assert_eq!(r.headers()["location"], "/console/pools/p?notice=deleted");
    assert!(world
        .records("p")
        .await
        .iter()
        .all(|r| r.spec.name != "web"));

    // Login: the double-submit cookie must come back with the form.
    let csrf = web.login_form().await;
    for (cookie, body) in [
        (String::new(), format!("token={ops}&csrf={csrf}")),
        (format!("caas_login_csrf={csrf}"), format!("token={ops}")),
        (
            format!("caas_login_csrf={}", "1".repeat(64)),
            format!("token={ops}&csrf={csrf}"),
        ),
    ] {
        let r = web.post("/console/login", &cookie, &body, None).await;
        assert_eq!(r.status(), 403, "{cookie} {body}");
        assert!(set_cookie(&r, "caas_session").is_none());
    }
    let r = web
        .post(
            "/console/login",
            &format!("caas_login_csrf={csrf}"),
            &format!("token={ops}&csrf={csrf}"),
            Some("http://evil.example"),
        )
        .await;
    assert_eq!(r.status(), 403);

    // Logout ends the session on the server.
    let csrf = web.csrf(&session, "/console/pools/p").await;
    let r = web
        .post(
            "/console/logout",
            &cookie,
            &format!("csrf={csrf}"),
            Some(&this),
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/console/login");
    assert!(full_set_cookie(&r, "caas_session").contains("Max-Age=0"));
    assert_eq!(web.console.session_count(), 0);
    assert_eq!(
        web.get("/console/pools/p", Some(&session)).await.status(),
        303
    );
}

#[tokio::test]
async fn a_developer_gets_no_ops_buttons_and_is_refused_them_anyway() {
    let (world, ops, dev, _) = world().await;
    let web = Web::new(&world, ConsoleConfig::default());
    let dev_session = web.login(&dev).await;
    let ops_session = web.login(&ops).await;

    let page = text(
        &web.get("/console/pools/p/containers/sofa", Some(&dev_session))
            .await,
    );
    assert!(
        page.contains("id=\"log-source\"") && page.contains("id=\"log-output\""),
        "{page}"
    );
    assert!(page.contains("data-logs-url=\"/console/pools/p/containers/sofa/logs\""));
    assert!(
        page.contains("id=\"open-terminal\""),
        "developers open terminals in rich containers"
    );
    assert!(
        !page.contains("id=\"delete\"") && !page.contains("/delete\""),
        "{page}"
    );
    assert!(!page.contains("id=\"restart-app\""), "{page}");
    let plain = text(
        &web.get("/console/pools/p/containers/web", Some(&dev_session))
            .await,
    );
    assert!(
        !plain.contains("id=\"open-terminal\""),
        "no admin user in a plain container"
    );
    assert_eq!(
        web.get(
            "/console/pools/p/containers/web/terminal",
            Some(&dev_session)
        )
        .await
        .status(),
        403
    );

    let ops_page = text(
        &web.get("/console/pools/p/containers/sofa", Some(&ops_session))
            .await,
    );
    assert!(
        ops_page.contains("id=\"delete\"") && ops_page.contains("id=\"restart-app\""),
        "{ops_page}"
    );
    let ops_plain = text(
        &web.get("/console/pools/p/containers/web", Some(&ops_session))
            .await,
    );
    assert!(ops_plain.contains("id=\"delete\"") && !ops_plain.contains("id=\"restart-app\""));

    // Posting them anyway: 403 from the roles table, nothing changed.
    let csrf = web.csrf(&dev_session, "/console/pools/p").await;
    let cookie = format!("caas_session={dev_session}");
    let before = world.store.dump();
    for path in [
        "/console/pools/p/containers/sofa/delete",
        "/console/pools/p/containers/sofa/restart-app",
        "/console/pools/p/containers/web/delete",
    ] {
        let r = web
            .post(
                path,
                &cookie,
                &format!("csrf={csrf}"),
                Some(&format!("http://{HOST}")),
            )
            .await;
        assert_eq!(r.status(), 403, "{path}: {}", text(&r));
        assert!(text(&r).contains("ops token"), "{}", text(&r));
    }
    assert_eq!(world.store.dump(), before);
}

#[tokio::test]
async fn another_pools_containers_are_not_found() {
    let (world, _ops, dev, _) = world().await;
    let web = Web::new(&world, ConsoleConfig::default());
    let session = web.login(&dev).await;
    for path in [
        "/console/pools/q",
        "/console/pools/q/containers/secret",
        "/console/pools/q/containers/secret/terminal",
        "/console/pools/p/containers/secret",
    ] {
        let r = web.get(path, Some(&session)).await;
        assert_eq!(r.status(), 404, "{path}: {}", text(&r));
        assert!(!text(&r).contains("n2"));
    }
    for path in [
        "/console/pools/q/containers/secret/log-files",
        "/console/pools/q/containers/secret/logs",
    ] {
        let r = web.get(path, Some(&session)).await;
        assert_eq!(r.status(), 404, "{path}");
        let body: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(body["code"], "not-found");
    }
    let r = web
        .get("/console/pools/p/containers/web/log-files", None)
        .await;
    assert_eq!(
        r.status(),
        401,
        "fetches without a session get the API's 401"
    );
}

#[tokio::test]
async fn a_terminal_websocket_from_a_foreign_origin_is_refused() {
    let (world, _ops, dev, _) = world().await;
    let central = Central::new(Arc::new(world.store.handle()), ADMIN);
    let console = Console::new(ConsoleConfig::default());
    let routes = caas_central::api::routes_with_console(
        central,
        Arc::new(AgentLink::new(None)),
        console.clone(),
    );
    // A session on this console (logged in through the same routes).
    let csrf_page = warp::test::request()
        .path("/console/login")
        .header("host", HOST)
        .reply(&routes)
        .await;
    let csrf = set_cookie(&csrf_page, "caas_login_csrf").unwrap();
    let login = warp::test::request()
        .method("POST")
        .path("/console/login")
        .header("host", HOST)
        .header("cookie", format!("caas_login_csrf={csrf}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={dev}&csrf={csrf}"))
        .reply(&routes)
        .await;
    let session = set_cookie(&login, "caas_session").expect("logged in");
    let path = "/console/pools/p/containers/sofa/terminal/ws";
    let ws = |origin: Option<&str>, cookie: bool| {
        let mut b = warp::test::ws().path(path).header("host", HOST);
        if let Some(o) = origin {
            b = b.header("origin", o);
        }
        if cookie {
            b = b.header("cookie", format!("caas_session={session}"));
        }
        b
    };
    for (origin, what) in [
        (Some("http://evil.example"), "another site"),
        (Some("http://central.test:8081"), "another port"),
        (
            Some("https://central.test:8080.evil.example"),
            "a look-alike",
        ),
        (Some("null"), "an opaque origin"),
        (None, "no Origin at all"),
    ] {
        assert!(
            ws(origin, true).handshake(routes.clone()).await.is_err(),
            "{what} was upgraded"
        );
    }
    assert!(
        ws(Some("http://central.test:8080"), false)
            .handshake(routes.clone())
            .await
            .is_err(),
        "no session"
    );
    // The same request from this central's own page is upgraded; the terminal then fails only
    // because no agent listens on the in-memory node's address.
    let mut client = ws(Some("http://central.test:8080"), true)
        .handshake(routes.clone())
        .await
        .expect("same-origin upgrade");
    client.send_text(r#"{"start":{"cols":80,"rows":24}}"#).await;
    let answer = client.recv().await.expect("an answer");
    let answer = answer.to_str().expect("a text frame");
    assert!(answer.contains("\"error\""), "{answer}");
}

#[tokio::test]
async fn a_revoked_token_ends_its_sessions_at_once() {
    let (world, ops, dev, _) = world().await;
    let web = Web::new(&world, ConsoleConfig::default());
    let a = world.instance();
    let session = web.login(&dev).await;
    assert_eq!(
        web.get("/console/pools/p", Some(&session)).await.status(),
        200
    );
    let (_, tokens) = a.call("GET", "/v1/pools/p/tokens", &ops, None).await;
    let id = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["role"] == "developer")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = a
        .call("DELETE", &format!("/v1/pools/p/tokens/{id}"), &ops, None)
        .await;
    assert_eq!(status, 204);
    let r = web.get("/console/pools/p", Some(&session)).await;
    assert_eq!(r.status(), 303, "{}", text(&r));
    assert_eq!(r.headers()["location"], "/console/login");
    assert_eq!(
        web.console.session_count(),
        0,
        "the session is gone, not just refused"
    );
}

#[tokio::test]
async fn a_missing_xterm_is_explained_on_the_terminal_page() {
    let (world, ops, _, _) = world().await;
    let dir = tempfile::tempdir().unwrap();
    let web = Web::new(
        &world,
        ConsoleConfig {
            xterm_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        },
    );
    let session = web.login(&ops).await;
    let r = web
        .get("/console/pools/p/containers/sofa/terminal", Some(&session))
        .await;
    assert_eq!(r.status(), 503);
    let html = text(&r);
    assert!(
        html.contains("id=\"terminal-missing\"") && html.contains("node-xterm"),
        "{html}"
    );
    assert!(
        !html.contains("xterm.js\" defer"),
        "no script that cannot load"
    );
    let js = web.get("/console/static/xterm.js", None).await;
    assert_eq!(js.status(), 503);
    // With a browser build in the directory, the page has its terminal.
    std::fs::write(
        dir.path().join("xterm.js"),
        "window.Terminal = function () {};\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("xterm.css"), ".xterm {}\n").unwrap();
    let r = web
        .get("/console/pools/p/containers/sofa/terminal", Some(&session))
        .await;
    assert_eq!(r.status(), 200, "{}", text(&r));
    let html = text(&r);
    assert!(
        html.contains("data-ws-path=\"/console/pools/p/containers/sofa/terminal/ws\""),
        "{html}"
    );
    assert!(html.contains("<script src=\"/console/static/xterm.js\" defer></script>"));
    let js = web.get("/console/static/xterm.js", None).await;
    assert_eq!(js.status(), 200);
    assert!(text(&js).contains("window.CaasXterm"));
}
