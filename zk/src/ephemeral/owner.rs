//! Who may take over an existing znode at the ephemeral's path: the rule that keeps two agents
//! with the same node id from stealing each other's registration.

/// What to do with a node found at our path, decided from its `ephemeral_owner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OwnerDecision {
    /// Created by the current session: keep it and bring its data up to date.
    Ours,
    /// Left by one of our earlier sessions (which the servers may not have expired yet):
    /// delete it, with a version check, and create it again.
    Stale,
    /// Someone else's (another live session, or a persistent node with owner 0): never touch it.
    Foreign(i64),
}

pub(crate) fn decide(owner: i64, current: i64, previous: &[i64]) -> OwnerDecision {
    if owner != 0 && owner == current {
        OwnerDecision::Ours
    } else if owner != 0 && previous.contains(&owner) {
        OwnerDecision::Stale
    } else {
        OwnerDecision::Foreign(owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_session_owns() {
        assert_eq!(decide(7, 7, &[1, 2]), OwnerDecision::Ours);
    }

    #[test]
    fn previous_session_is_stale() {
        assert_eq!(decide(2, 7, &[1, 2]), OwnerDecision::Stale);
    }

    #[test]
    fn unknown_session_is_foreign() {
        assert_eq!(decide(9, 7, &[1, 2]), OwnerDecision::Foreign(9));
    }

    #[test]
    fn persistent_node_is_never_ours() {
        assert_eq!(decide(0, 0, &[0]), OwnerDecision::Foreign(0));
    }
}
