//! Constraint parsing, display and matching.

use std::collections::BTreeMap;

use super::{Constraint, ConstraintError, ConstraintOp};

#[test]
fn parses_eq_and_ne_and_round_trips() {
    let eq = Constraint::parse("rack==r1").unwrap();
    assert_eq!(
        (eq.key.as_str(), eq.op, eq.value.as_str()),
        ("rack", ConstraintOp::Eq, "r1")
    );
    let ne: Constraint = "zone != a".parse().unwrap();
    assert_eq!(
        (ne.key.as_str(), ne.op, ne.value.as_str()),
        ("zone", ConstraintOp::Ne, "a")
    );
    for text in ["rack==r1", "rack!=r1", "ssd==true"] {
        assert_eq!(Constraint::parse(text).unwrap().to_string(), text);
    }
    assert_eq!(ne.to_string(), "zone!=a");
}

#[test]
fn rejects_unknown_operators_listing_the_supported_ones() {
    for (text, op) in [
        ("rack=r1", "="),
        ("rack<r1", "<"),
        ("rack~=x", "~="),
        ("rack===r1", "==="),
    ] {
        let err = Constraint::parse(text).unwrap_err();
        assert_eq!(
            err,
            ConstraintError::UnsupportedOperator {
                text: text.to_string(),
                op: op.to_string()
            }
        );
        let msg = err.to_string();
        assert!(msg.contains("`==` and `!=`"), "{msg}");
        assert!(msg.contains(text), "{msg}");
    }
    assert!(matches!(
        Constraint::parse("rack==r1!=r2"),
        Err(ConstraintError::UnsupportedOperator { .. })
    ));
}

#[test]
fn rejects_missing_operator_and_empty_parts() {
    let err = Constraint::parse("rack").unwrap_err();
    assert!(matches!(err, ConstraintError::MissingOperator { .. }));
    assert!(err.to_string().contains("`==` and `!=`"));
    assert!(matches!(
        Constraint::parse("==r1"),
        Err(ConstraintError::EmptyKey { .. })
    ));
    assert!(matches!(
        Constraint::parse(" !=r1"),
        Err(ConstraintError::EmptyKey { .. })
    ));
    assert!(matches!(
        Constraint::parse("rack=="),
        Err(ConstraintError::EmptyValue { .. })
    ));
}

#[test]
fn missing_label_fails_eq_and_passes_ne() {
    let none = BTreeMap::new();
    let r1: BTreeMap<String, String> = [("rack".to_string(), "r1".to_string())].into();
    let eq = Constraint::parse("rack==r1").unwrap();
    let ne = Constraint::parse("rack!=r1").unwrap();
    assert!(eq.matches(&r1) && !eq.matches(&none));
    assert!(!ne.matches(&r1) && ne.matches(&none));
}

#[test]
fn serializes_as_text() {
    let c = Constraint::parse("rack!=r3").unwrap();
    assert_eq!(serde_json::to_string(&c).unwrap(), "\"rack!=r3\"");
    let back: Constraint = serde_json::from_str("\"rack!=r3\"").unwrap();
    assert_eq!(back, c);
    assert!(serde_json::from_str::<Constraint>("\"rack=r3\"").is_err());
}
