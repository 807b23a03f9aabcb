//! `application/x-www-form-urlencoded` bodies of the console's forms (login, logout, restart,
//! delete): a few named text fields, nothing else.

/// The fields of a form body; a field that is not UTF-8 or appears twice makes it invalid.
#[derive(Debug, Default)]
pub struct Form {
    fields: Vec<(String, String)>,
}

/// Why a form body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the form is not valid: {0}")]
pub struct FormError(pub &'static str);

fn decode(text: &[u8]) -> Result<String, FormError> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(FormError("a bad %-escape"))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| FormError("a field is not UTF-8"))
}

impl Form {
    pub fn parse(body: &[u8]) -> Result<Self, FormError> {
        let mut fields: Vec<(String, String)> = Vec::new();
        for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let mut parts = pair.splitn(2, |b| *b == b'=');
            let name = decode(parts.next().unwrap_or_default())?;
            let value = decode(parts.next().unwrap_or_default())?;
            if fields.iter().any(|(n, _)| *n == name) {
                return Err(FormError("a field appears twice"));
            }
            fields.push((name, value));
        }
        Ok(Self { fields })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields() {
        let f = Form::parse(b"token=caas_ab%2Bc+d&csrf=123&empty=").expect("parses");
        assert_eq!(f.get("token"), Some("caas_ab+c d"));
        assert_eq!(f.get("csrf"), Some("123"));
        assert_eq!(f.get("empty"), Some(""));
        assert_eq!(f.get("missing"), None);
        assert!(Form::parse(b"").expect("empty").get("x").is_none());
    }

    #[test]
    fn refuses_bad_bodies() {
        assert!(Form::parse(b"a=%zz").is_err());
        assert!(Form::parse(b"a=%4").is_err());
        assert!(Form::parse(b"a=%ff%fe").is_err());
        assert!(
            Form::parse(b"a=1&a=2").is_err(),
            "a second csrf field cannot shadow the first"
        );
    }
}
