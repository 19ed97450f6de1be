//! Who may use the control socket: root, the daemon's own user, and members of
//! `[service] control_group`. The socket's mode already keeps others out; this check holds even
//! when the mode is wider than it should be.

use anyhow::Context;
use nix::unistd::{Gid, Group, Uid};

#[derive(Debug, Clone)]
pub struct Policy {
    daemon_uid: u32,
    /// The control group's name and gid.
    control: Option<(String, u32)>,
}

impl Policy {
    /// Resolves the control group by name (blocking: NSS). `daemon_uid` is the user the daemon
    /// runs as (after any privilege drop).
    pub fn new(control_group: Option<&str>, daemon_uid: u32) -> anyhow::Result<Self> {
        let control = match control_group {
            None => None,
            Some(name) => {
                let group = Group::from_name(name)
                    .with_context(|| format!("cannot look up group `{name}`"))?
                    .with_context(|| {
                        format!("service.control_group: there is no group named `{name}`")
                    })?;
                Some((name.to_owned(), group.gid.as_raw()))
            }
        };
        Ok(Self {
            daemon_uid,
            control,
        })
    }

    pub fn control_gid(&self) -> Option<u32> {
        self.control.as_ref().map(|(_, gid)| *gid)
    }

    /// Checks a peer (blocking: reads `/proc` or the group database).
    pub fn check(&self, uid: u32, gid: u32, pid: Option<i32>) -> Result<(), String> {
        if uid == 0 || uid == self.daemon_uid {
            return Ok(());
        }
        let Some((name, control_gid)) = &self.control else {
            return Err(format!(
                "uid {uid} is neither root nor the daemon's user (uid {}), and no [service] control_group is set",
                self.daemon_uid
            ));
        };
        if gid == *control_gid || member(uid, *control_gid, pid) {
            return Ok(());
        }
        Err(format!(
            "uid {uid} is neither root, the daemon's user (uid {}), nor in the control group `{name}`",
            self.daemon_uid
        ))
    }
}

/// Whether the peer is in `group`: the peer process's own supplementary groups where the
/// system shows them (Linux), else the group's member list.
fn member(uid: u32, group: u32, pid: Option<i32>) -> bool {
    if let Some(pid) = pid
        && let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
        && let Some(groups) = status.lines().find_map(|l| l.strip_prefix("Groups:"))
    {
        return groups
            .split_whitespace()
            .filter_map(|g| g.parse::<u32>().ok())
            .any(|g| g == group);
    }
    let Ok(Some(user)) = nix::unistd::User::from_uid(Uid::from_raw(uid)) else {
        return false;
    };
    Group::from_gid(Gid::from_raw(group))
        .ok()
        .flatten()
        .is_some_and(|g| g.mem.contains(&user.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_self_pass_others_are_told_why_not() {
        let policy = Policy {
            daemon_uid: 999,
            control: None,
        };
        assert!(policy.check(0, 0, None).is_ok());
        assert!(policy.check(999, 999, None).is_ok());
        let why = policy.check(1000, 1000, None).unwrap_err();
        assert!(
            why.contains("uid 1000") && why.contains("control_group"),
            "{why}"
        );

        let policy = Policy {
            daemon_uid: 999,
            control: Some(("codexctl".into(), 4242)),
        };
        assert!(policy.check(1000, 4242, None).is_ok(), "primary group");
        let why = policy.check(1000, 1000, None).unwrap_err();
        assert!(why.contains("`codexctl`"), "{why}");
    }

    #[test]
    fn supplementary_groups_come_from_the_peer_process() {
        // This test process is its own peer: its groups are whatever /proc says.
        let me = std::process::id() as i32;
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let Some(first) = status
            .lines()
            .find_map(|l| l.strip_prefix("Groups:"))
            .and_then(|g| g.split_whitespace().next().and_then(|g| g.parse().ok()))
        else {
            return; // no supplementary groups here
        };
        assert!(member(12345, first, Some(me)));
        assert!(!member(12345, 4_000_000_000, Some(me)));
    }

    #[test]
    fn an_unknown_control_group_is_a_clear_error() {
        let err = Policy::new(Some("no-such-group-xyz"), 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no group named `no-such-group-xyz`"), "{err}");
    }
}
