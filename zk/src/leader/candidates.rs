//! Candidate znode names of the leader latch and who leads: the lowest sequence number wins and
//! each follower watches only its predecessor, so a leader change wakes one candidate, not all.

/// Candidate names are `latch-<nonce>-<sequence>`. The per-session nonce lets a candidate find
/// its own node again when the reply to its create was lost.
pub(crate) const PREFIX: &str = "latch-";

pub(crate) fn own_prefix(nonce: &str) -> String {
    format!("{PREFIX}{nonce}-")
}

/// The sequence number ZooKeeper appended, for names that are latch candidates.
pub(crate) fn sequence(name: &str) -> Option<i64> {
    let rest = name.strip_prefix(PREFIX)?;
    let (_, digits) = rest.rsplit_once('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Position<'a> {
    Leader,
    Follower {
        predecessor: &'a str,
    },
    /// Our node is not among the candidates (deleted, or its session is gone).
    Missing,
}

pub(crate) fn position<'a>(children: &'a [String], mine: &str) -> Position<'a> {
    let Some(my_seq) = sequence(mine) else {
        return Position::Missing;
    };
    if !children.iter().any(|c| c == mine) {
        return Position::Missing;
    }
    let predecessor = children
        .iter()
        .filter_map(|c| sequence(c).map(|s| (s, c.as_str())))
        .filter(|&(s, c)| (s, c) < (my_seq, mine))
        .max();
    match predecessor {
        None => Position::Leader,
        Some((_, predecessor)) => Position::Follower { predecessor },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_sequence_after_nonce() {
        assert_eq!(sequence("latch-ab12-0000000007"), Some(7));
        assert_eq!(sequence("latch-ab12-"), None);
        assert_eq!(sequence("other-0000000001"), None);
        assert_eq!(sequence("latch-x-12a"), None);
    }

    #[test]
    fn lowest_sequence_leads() {
        let c = names(&[
            "latch-b-0000000003",
            "latch-a-0000000001",
            "latch-c-0000000002",
        ]);
        assert_eq!(position(&c, "latch-a-0000000001"), Position::Leader);
    }

    #[test]
    fn follower_watches_only_its_predecessor() {
        let c = names(&[
            "latch-b-0000000003",
            "latch-a-0000000001",
            "latch-c-0000000002",
            "latch-d-0000000010",
        ]);
        assert_eq!(
            position(&c, "latch-d-0000000010"),
            Position::Follower {
                predecessor: "latch-b-0000000003"
            }
        );
        assert_eq!(
            position(&c, "latch-c-0000000002"),
            Position::Follower {
                predecessor: "latch-a-0000000001"
            }
        );
    }

    #[test]
    fn ignores_foreign_names_and_detects_missing() {
        let c = names(&["lock", "latch-a-0000000005"]);
        assert_eq!(position(&c, "latch-a-0000000005"), Position::Leader);
        assert_eq!(position(&c, "latch-z-0000000001"), Position::Missing);
    }

    #[test]
    fn sequence_not_nonce_orders() {
        let c = names(&["latch-zzz-0000000001", "latch-aaa-0000000002"]);
        assert_eq!(
            position(&c, "latch-aaa-0000000002"),
            Position::Follower {
                predecessor: "latch-zzz-0000000001"
            }
        );
    }
}
