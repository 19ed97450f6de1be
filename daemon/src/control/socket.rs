//! Creating the control socket: a stale file is replaced, a live daemon is not; the mode (and
//! group) are set before `listen`, so no peer can connect through a wider mode in between.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use nix::sys::socket::{AddressFamily, Backlog, SockFlag, SockType, UnixAddr};

/// A bound, listening control socket; the file is removed when this drops (if still ours).
#[derive(Debug)]
pub struct ControlSocket {
    pub listener: UnixListener,
    pub path: PathBuf,
    inode: u64,
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        // Only our own file: a successor may already have replaced it.
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.inode) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Creates the socket at `path`: 0600, or 0660 with group `gid` when a control group is set.
/// With `owner` (uid, gid: the user root will drop to), the socket — and its directory when
/// created here — belong to that user. Blocking; call before the runtime starts.
pub fn bind(
    path: &Path,
    gid: Option<u32>,
    owner: Option<(u32, u32)>,
) -> anyhow::Result<ControlSocket> {
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        // Only the daemon (and the control group) need to reach the socket.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(if gid.is_some() { 0o750 } else { 0o700 })
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        if gid.is_some() || owner.is_some() {
            std::os::unix::fs::chown(dir, owner.map(|o| o.0), gid.or(owner.map(|o| o.1)))
                .with_context(|| format!("cannot hand over {}", dir.display()))?;
        }
    }
    remove_stale(path)?;

    let fd: OwnedFd = nix::sys::socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .context("cannot create the control socket")?;
    let addr = UnixAddr::new(path).context("control socket path")?;
    nix::sys::socket::bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr)
        .with_context(|| format!("cannot bind the control socket {}", path.display()))?;
    // Not listening yet: nobody can connect while the mode is tightened.
    let set_mode = |mode| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
    set_mode(0o600).with_context(|| format!("cannot set the mode of {}", path.display()))?;
    if gid.is_some() || owner.is_some() {
        std::os::unix::fs::chown(path, owner.map(|o| o.0), gid.or(owner.map(|o| o.1)))
            .with_context(|| format!("cannot hand over {}", path.display()))?;
    }
    if gid.is_some() {
        set_mode(0o660).with_context(|| format!("cannot set the mode of {}", path.display()))?;
    }
    let backlog = Backlog::new(64).context("listen backlog")?;
    nix::sys::socket::listen(&fd, backlog).context("cannot listen on the control socket")?;
    let listener = UnixListener::from(fd);
    listener
        .set_nonblocking(true)
        .context("control socket: non-blocking mode")?;
    let inode = std::fs::symlink_metadata(path)
        .with_context(|| format!("{} vanished", path.display()))?
        .ino();
    Ok(ControlSocket {
        listener,
        path: path.to_owned(),
        inode,
    })
}

/// A socket file nobody answers on is left over from a daemon that died: remove it. One that
/// answers belongs to a running daemon: refuse. Anything else at the path is not ours to delete.
fn remove_stale(path: &Path) -> anyhow::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", path.display())),
    };
    if !meta.file_type().is_socket() {
        bail!(
            "{} exists and is not a socket; remove it or set paths.socket elsewhere",
            path.display()
        );
    }
    match UnixStream::connect(path) {
        Ok(_) => bail!(
            "another codex-proxy is already running (its control socket {} answers); stop it first",
            path.display()
        ),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!("removing the stale control socket {}", path.display());
            std::fs::remove_file(path)
                .with_context(|| format!("cannot remove the stale socket {}", path.display()))
        }
        Err(e) => Err(e).with_context(|| format!("cannot check the socket {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_is_private_and_a_stale_socket_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/control.sock");
        let socket = bind(&path, None, None).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        // Live: a second daemon is refused.
        let err = bind(&path, None, None).unwrap_err().to_string();
        assert!(err.contains("already running"), "{err}");
        // Dead (listener closed, file left behind): replaced.
        let leftover = UnixListener::bind(dir.path().join("stale.sock")).unwrap();
        drop(leftover);
        let again = bind(&dir.path().join("stale.sock"), None, None).unwrap();
        drop(again);
        assert!(
            !dir.path().join("stale.sock").exists(),
            "removed when dropped"
        );
        drop(socket);
        assert!(!path.exists());
    }

    #[test]
    fn other_files_are_not_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        std::fs::write(&path, "precious").unwrap();
        let err = bind(&path, None, None).unwrap_err().to_string();
        assert!(err.contains("not a socket"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
    }

    #[test]
    fn a_control_group_gets_0660() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let gid = nix::unistd::getegid().as_raw();
        let _socket = bind(&path, Some(gid), None).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o660);
        assert_eq!(meta.gid(), gid);
    }
}
