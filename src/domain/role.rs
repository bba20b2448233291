//! Who may do what: the four roles of API tokens and console users, ordered by what they may do.

/// A role of an API token or a console user; a higher role may do everything a lower one may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Part-time reception staff.
    PartTime,
    /// After-sales agent.
    Agent,
    /// Supervisor.
    Supervisor,
    /// Administrator.
    Admin,
}

/// Every role's name, lowest first (the one list config, the console and the API share).
pub const ROLES: [&str; 4] = ["part_time", "agent", "supervisor", "admin"];

impl Role {
    /// Every role, lowest first, in [`ROLES`] order.
    pub const ALL: [Self; 4] = [Self::PartTime, Self::Agent, Self::Supervisor, Self::Admin];

    /// Parses `part_time`, `agent`, `supervisor`, `admin`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        ROLES.iter().position(|r| *r == s).map(|i| Self::ALL[i])
    }

    /// `part_time`, `agent`, `supervisor`, `admin`.
    #[must_use]
    pub fn name(self) -> &'static str {
        ROLES[self as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_order_by_power() {
        for (role, name) in [
            (Role::PartTime, "part_time"),
            (Role::Agent, "agent"),
            (Role::Supervisor, "supervisor"),
            (Role::Admin, "admin"),
        ] {
            assert_eq!(role.name(), name);
            assert_eq!(Role::parse(name), Some(role));
        }
        for bad in ["", "Agent", "root", "part-time"] {
            assert_eq!(Role::parse(bad), None, "{bad:?}");
        }
        assert!(Role::PartTime < Role::Agent && Role::Agent < Role::Supervisor && Role::Supervisor < Role::Admin);
    }
}
