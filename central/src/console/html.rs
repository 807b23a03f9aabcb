//! HTML output: the escape function every dynamic value goes through, and the page frame
//! (head with the console's own stylesheet and script, header with navigation and logout).
//! Pages carry no inline script or style; data for the script travels in `data-` attributes.

use std::fmt::Write as _;

use crate::auth::Principal;

/// Escapes text for HTML element content and (double- or single-quoted) attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a path segment (names are DNS labels already; this is belt and braces).
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// What surrounds a page's content.
#[derive(Debug, Default)]
pub struct Frame<'a> {
    pub title: &'a str,
    /// `data-page` of the body: which part of console.js runs.
    pub page: &'a str,
    /// The logged-in caller and the session's CSRF token (for the logout form).
    pub who: Option<(&'a Principal, &'a str)>,
    /// The pool the page is about (navigation).
    pub pool: Option<&'a str>,
    /// Whether to link the nodes page.
    pub nodes_link: bool,
    /// More `data-` attributes of the body: (name after `data-`, value).
    pub data: Vec<(&'static str, String)>,
    /// Extra stylesheets and scripts (paths under /console/static/), loaded before console.js.
    pub styles: Vec<&'static str>,
    pub scripts: Vec<&'static str>,
}

/// A whole page: `content` is HTML made with [`escape`]d values.
pub fn page(frame: &Frame<'_>, content: &str) -> String {
    let mut out = String::with_capacity(content.len() + 2048);
    out.push_str("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(out, "<title>{} · caas console</title>", escape(frame.title));
    out.push_str("<link rel=\"stylesheet\" href=\"/console/static/console.css\">\n");
    for style in &frame.styles {
        let _ = writeln!(
            out,
            "<link rel=\"stylesheet\" href=\"/console/static/{}\">",
            escape(style)
        );
    }
    for script in &frame.scripts {
        let _ = writeln!(
            out,
            "<script src=\"/console/static/{}\" defer></script>",
            escape(script)
        );
    }
    out.push_str("<script src=\"/console/static/console.js\" defer></script>\n</head>\n");
    let _ = write!(out, "<body data-page=\"{}\"", escape(frame.page));
    for (name, value) in &frame.data {
        let _ = write!(out, " data-{}=\"{}\"", escape(name), escape(value));
    }
    out.push_str(">\n<header>\n<a class=\"brand\" href=\"/console/\">caas console</a>\n<nav>");
    if let Some((who, _)) = frame.who {
        if matches!(who, Principal::Admin) {
            out.push_str("<a href=\"/console/pools\">Pools</a>");
        }
        if let Some(pool) = frame.pool {
            let p = segment(pool);
            let _ = write!(
                out,
                "<a href=\"/console/pools/{p}\">Containers of {}</a>",
                escape(pool)
            );
            if frame.nodes_link {
                let _ = write!(out, "<a href=\"/console/pools/{p}/nodes\">Nodes</a>");
            }
        }
    }
    out.push_str("</nav>\n");
    if let Some((who, csrf)) = frame.who {
        let _ = writeln!(
            out,
            "<form class=\"logout\" method=\"post\" action=\"/console/logout\">\
             <span class=\"who\">{} · {}</span>\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\" id=\"logout\">Log out</button></form>",
            escape(who.role_name()),
            escape(who.token_id()),
            escape(csrf)
        );
    }
    out.push_str("</header>\n<main>\n");
    out.push_str(content);
    out.push_str("\n</main>\n</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_could_leave_text() {
        assert_eq!(
            escape(r#"<script>alert("x" + 'y') & </script>"#),
            "&lt;script&gt;alert(&quot;x&quot; + &#39;y&#39;) &amp; &lt;/script&gt;"
        );
        assert_eq!(escape("plain-name_1.2"), "plain-name_1.2");
        assert_eq!(escape("é ü"), "é ü");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
        assert_eq!(segment("web-1"), "web-1");
    }

    #[test]
    fn pages_carry_no_inline_script_or_style_and_escape_data() {
        let who = Principal::Admin;
        let html = page(
            &Frame {
                title: "<t>",
                page: "container",
                who: Some((&who, "c\"srf")),
                pool: Some("p\"1"),
                nodes_link: true,
                data: vec![("logs-url", "/x?a=\"b\"".into())],
                ..Default::default()
            },
            "<p>content</p>",
        );
        assert!(html.contains("<title>&lt;t&gt; · caas console</title>"));
        assert!(html.contains("data-logs-url=\"/x?a=&quot;b&quot;\""));
        assert!(html.contains("value=\"c&quot;srf\""));
        assert!(!html.contains("<script>") && !html.contains("<style") && !html.contains("style="));
        assert!(!html.contains("onclick") && !html.contains("javascript:"));
    }
}
