//! Files in the state directory: private (0600) and replaced atomically, so a crash leaves
//! either the old file or the new one, never half of one.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::accounts::Secret;

pub const API_KEY_FILE: &str = "api_key";
pub const MODELS_CACHE_FILE: &str = "models_cache.json";
pub const INSTALLATION_ID_FILE: &str = "installation_id";
pub const APPCAST_FILE: &str = "appcast.json";

/// Writes `bytes` to `path` through a temp file: 0600, fsync, rename, fsync of the directory.
pub fn write_private_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().context("state file has no directory")?;
    let name = path
        .file_name()
        .context("state file has no name")?
        .to_string_lossy();
    let tmp: PathBuf = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

/// The API key kept in the state directory, generated on first start.
pub fn generated_api_key(state_dir: &Path) -> anyhow::Result<Secret> {
    let path = state_dir.join(API_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok(Secret::new(text.trim().to_owned())),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let key = new_generated_api_key(state_dir)?;
    tracing::info!(
        "generated an API key in {} (`codexctl key show` prints it)",
        path.display()
    );
    Ok(key)
}

/// Makes a new random API key and keeps it in the state directory (replacing any old one).
pub fn new_generated_api_key(state_dir: &Path) -> anyhow::Result<Secret> {
    let path = state_dir.join(API_KEY_FILE);
    let random = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let key = format!("codex-proxy-{}", &random[..40]);
    write_private_atomic(&path, format!("{key}\n").as_bytes())?;
    Ok(Secret::new(key))
}

/// This installation's id (a UUID), kept in the state directory. On first start it is taken
/// from the official client's `installation_id` in `codex_home` when there is a valid one, so
/// both present as the same installation; otherwise a new one is made.
pub fn installation_id(state_dir: &Path, codex_home: Option<&Path>) -> anyhow::Result<String> {
    let path = state_dir.join(INSTALLATION_ID_FILE);
    let valid = |text: &str| {
        uuid::Uuid::parse_str(text.trim())
            .ok()
            .map(|u| u.hyphenated().to_string())
    };
    if let Some(id) = std::fs::read_to_string(&path)
        .ok()
        .as_deref()
        .and_then(valid)
    {
        return Ok(id);
    }
    let imported = codex_home
        .and_then(|dir| std::fs::read_to_string(dir.join(INSTALLATION_ID_FILE)).ok())
        .as_deref()
        .and_then(valid);
    let id = imported
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    write_private_atomic(&path, format!("{id}\n").as_bytes())?;
    if imported.is_some() {
        tracing::info!(
            "using the Codex installation id from {}",
            codex_home
                .map(|d| d.display().to_string())
                .unwrap_or_default()
        );
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn atomic_private_write_and_stable_generated_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.json");
        write_private_atomic(&path, b"one").unwrap();
        write_private_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp files left"
        );

        let codex = tempfile::tempdir().unwrap();
        std::fs::write(
            codex.path().join(INSTALLATION_ID_FILE),
            "11111111-2222-4333-8444-555555555555\n",
        )
        .unwrap();
        let state = tempfile::tempdir().unwrap();
        assert_eq!(
            installation_id(state.path(), Some(codex.path())).unwrap(),
            "11111111-2222-4333-8444-555555555555"
        );
        std::fs::write(codex.path().join(INSTALLATION_ID_FILE), "changed").unwrap();
        assert_eq!(
            installation_id(state.path(), Some(codex.path())).unwrap(),
            "11111111-2222-4333-8444-555555555555",
            "kept once made"
        );
        let fresh = tempfile::tempdir().unwrap();
        assert!(uuid::Uuid::parse_str(&installation_id(fresh.path(), None).unwrap()).is_ok());

        let key = generated_api_key(dir.path()).unwrap();
        assert!(key.expose().starts_with("codex-proxy-") && key.expose().len() == 52);
        assert_eq!(
            generated_api_key(dir.path()).unwrap(),
            key,
            "generated once, then kept"
        );
    }
}
