//! Dropping root. Started as root with `[service] user`, the daemon binds its sockets and hands
//! its files to that user first, then calls initgroups → setgid → setuid, proves that root
//! cannot be regained, and only then starts the multi-threaded runtime.

use std::ffi::CString;
use std::path::Path;

use anyhow::{Context, bail};
use nix::unistd::{Gid, Group, Uid, User};

use crate::config::ServiceConfig;

/// The user (and group) to run as.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

pub fn is_root() -> bool {
    Uid::effective().is_root()
}

/// What to do about running as root: `Some(target)` to drop to, `None` to stay as we are.
pub fn plan(service: &ServiceConfig, allow_root: bool) -> anyhow::Result<Option<Target>> {
    if !is_root() {
        if service.user.is_some() {
            tracing::debug!("not started as root: service.user does not apply");
        }
        return Ok(None);
    }
    let Some(user) = &service.user else {
        if allow_root {
            tracing::warn!("running as root (--allow-root); set [service] user to drop privileges");
            return Ok(None);
        }
        bail!(
            "started as root without [service] user: set `user = \"codex-proxy\"` (or another \
             unprivileged user) so the daemon drops privileges after binding its sockets, or pass \
             --allow-root to run as root anyway"
        );
    };
    let user = User::from_name(user.as_str())
        .with_context(|| format!("cannot look up user `{}`", user.as_str()))?
        .with_context(|| format!("service.user: there is no user named `{}`", user.as_str()))?;
    if user.uid.is_root() {
        bail!("service.user is root, which drops nothing; unset it and pass --allow-root instead");
    }
    let gid = match &service.group {
        None => user.gid,
        Some(group) => {
            Group::from_name(group.as_str())
                .with_context(|| format!("cannot look up group `{}`", group.as_str()))?
                .with_context(|| {
                    format!(
                        "service.group: there is no group named `{}`",
                        group.as_str()
                    )
                })?
                .gid
        }
    };
    Ok(Some(Target {
        name: user.name,
        uid: user.uid.as_raw(),
        gid: gid.as_raw(),
    }))
}

/// Gives `path` (followed, if it is a symlink) and what is directly in it (never followed:
/// a planted link must not hand over its target) to the target user.
pub fn hand_over(target: &Target, path: &Path) -> anyhow::Result<()> {
    let fail = |p: &Path| format!("cannot give {} to {}", p.display(), target.name);
    std::os::unix::fs::chown(path, Some(target.uid), Some(target.gid))
        .with_context(|| fail(path))?;
    if path.is_dir() {
        for entry in std::fs::read_dir(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .flatten()
        {
            let p = entry.path();
            std::os::unix::fs::lchown(&p, Some(target.uid), Some(target.gid))
                .with_context(|| fail(&p))?;
        }
    }
    Ok(())
}

/// Becomes the target user for good. Must run before any thread is started.
pub fn drop_to(target: &Target) -> anyhow::Result<()> {
    let name = CString::new(target.name.clone()).context("user name")?;
    let gid = Gid::from_raw(target.gid);
    initgroups(&name, gid).context("initgroups")?;
    nix::unistd::setgid(gid).context("setgid")?;
    nix::unistd::setuid(Uid::from_raw(target.uid)).context("setuid")?;
    // Proof: with root really gone, asking for it back fails.
    if nix::unistd::setuid(Uid::from_raw(0)).is_ok() || Uid::effective().is_root() {
        bail!("root could be regained after dropping privileges; refusing to run");
    }
    tracing::info!(
        user = %target.name,
        uid = target.uid,
        gid = target.gid,
        "dropped root privileges"
    );
    Ok(())
}

#[cfg(not(target_os = "macos"))]
fn initgroups(name: &CString, gid: Gid) -> nix::Result<()> {
    nix::unistd::initgroups(name, gid)
}

/// nix has no `initgroups` for Apple targets; libc's is the same call.
#[cfg(target_os = "macos")]
#[allow(unsafe_code)]
fn initgroups(name: &CString, gid: Gid) -> nix::Result<()> {
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    let rc = unsafe { libc::initgroups(name.as_ptr(), gid.as_raw() as libc::c_int) };
    if rc == 0 {
        Ok(())
    } else {
        Err(nix::errno::Errno::last())
    }
}
