//! What the daemon tells the backend it is (protocol §2.2), from `[client_identity]` and this
//! machine: the `originator`, `version` and `User-Agent` of the official client's format.

use super::appcast::{DESKTOP_ORIGINATOR, Release};
use crate::config::ClientIdentityConfig;

/// The official client version this daemon speaks for when the config pins none.
pub const DEFAULT_CLIENT_VERSION: &str = "0.146.0";

/// The identity headers, computed once (OS detection reads files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub originator: String,
    pub version: String,
    pub user_agent: String,
}

impl Identity {
    /// `appcast` (the Desktop feed's newest release) fills in the version and build of a
    /// `Codex Desktop` identity where the config pins none; other identities ignore it.
    pub fn new(config: &ClientIdentityConfig, appcast: Option<&Release>) -> Self {
        let originator = config.originator.as_str().to_owned();
        let appcast = appcast.filter(|_| originator == DESKTOP_ORIGINATOR);
        let version = config
            .app_version
            .as_ref()
            .map(|v| v.as_str())
            .or(appcast.map(|r| r.app_version.as_str()))
            .unwrap_or(DEFAULT_CLIENT_VERSION)
            .to_owned();
        let build = config
            .build_number
            .as_ref()
            .map(|b| b.as_str())
            .or(appcast.map(|r| r.build_number.as_str()));
        let platform = config
            .platform
            .as_ref()
            .map_or_else(detect_platform, |p| p.as_str().to_owned());
        let arch = config
            .arch
            .as_ref()
            .map_or_else(detect_arch, |a| a.as_str().to_owned());
        // `{originator}/{version} ({os} {os_version}; {arch}) {terminal}`; a service has no
        // terminal, which the official client reports as `unknown`.
        let mut user_agent = format!("{originator}/{version} ({platform}; {arch}) unknown");
        if let Some(build) = build {
            user_agent.push_str(&format!(" ({originator}; {build})"));
        }
        Self {
            originator,
            version,
            user_agent,
        }
    }
}

fn detect_arch() -> String {
    let arch = std::env::consts::ARCH;
    // macOS reports Apple silicon as arm64, as `uname -m` does.
    if cfg!(target_os = "macos") && arch == "aarch64" {
        "arm64".into()
    } else {
        arch.into()
    }
}

/// `{os} {version}` as the official client's OS detection spells it (`Debian 12.0.0`,
/// `Ubuntu 24.4.0`, `Mac OS 26.1.0`).
fn detect_platform() -> String {
    if cfg!(target_os = "macos") {
        let version = std::process::Command::new("sw_vers")
            .arg("-productVersion")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        return format!("Mac OS {}", semver_like(&version));
    }
    if cfg!(target_os = "linux")
        && let Ok(text) = std::fs::read_to_string("/etc/os-release")
    {
        return platform_from_os_release(&text);
    }
    format!("{} 0.0.0", std::env::consts::OS)
}

pub fn platform_from_os_release(text: &str) -> String {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim().trim_matches('"').to_owned())
    };
    let name = match field("ID").as_deref() {
        Some("debian") => "Debian".to_owned(),
        Some("ubuntu") => "Ubuntu".to_owned(),
        Some("fedora") => "Fedora".to_owned(),
        Some("arch") => "Arch Linux".to_owned(),
        Some("alpine") => "Alpine Linux".to_owned(),
        Some("nixos") => "NixOS".to_owned(),
        _ => field("NAME").unwrap_or_else(|| "Linux".into()),
    };
    format!(
        "{name} {}",
        semver_like(&field("VERSION_ID").unwrap_or_default())
    )
}

/// `22.04` → `22.4.0`, `12` → `12.0.0`: three numeric components.
fn semver_like(version: &str) -> String {
    let mut parts: Vec<u64> = version
        .split('.')
        .map_while(|p| p.parse().ok())
        .take(3)
        .collect();
    parts.resize(3, 0);
    format!("{}.{}.{}", parts[0], parts[1], parts[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agent_has_the_official_shape() {
        let mut config = ClientIdentityConfig {
            platform: Some("Debian 12.0.0".to_owned().try_into().unwrap()),
            arch: Some("x86_64".to_owned().try_into().unwrap()),
            ..ClientIdentityConfig::default()
        };
        let id = Identity::new(&config, None);
        assert_eq!(
            id.user_agent,
            "codex_cli_rs/0.146.0 (Debian 12.0.0; x86_64) unknown"
        );
        assert_eq!(id.version, DEFAULT_CLIENT_VERSION);

        config.originator = "Codex Desktop".to_owned().try_into().unwrap();
        config.app_version = Some("0.153.3".to_owned().try_into().unwrap());
        config.build_number = Some("26.901.41123".to_owned().try_into().unwrap());
        let id = Identity::new(&config, None);
        assert_eq!(
            id.user_agent,
            "Codex Desktop/0.153.3 (Debian 12.0.0; x86_64) unknown (Codex Desktop; 26.901.41123)"
        );
    }

    #[test]
    fn the_appcast_fills_only_an_unpinned_desktop_identity() {
        let release = Release {
            app_version: "26.318.11754".into(),
            build_number: "2026.1118".into(),
        };
        let mut config = ClientIdentityConfig {
            platform: Some("Debian 12.0.0".to_owned().try_into().unwrap()),
            arch: Some("x86_64".to_owned().try_into().unwrap()),
            ..ClientIdentityConfig::default()
        };
        // The CLI's identity is not described by the Desktop feed.
        assert_eq!(
            Identity::new(&config, Some(&release)),
            Identity::new(&config, None)
        );
        config.originator = "Codex Desktop".to_owned().try_into().unwrap();
        let id = Identity::new(&config, Some(&release));
        assert_eq!(id.version, "26.318.11754");
        assert_eq!(
            id.user_agent,
            "Codex Desktop/26.318.11754 (Debian 12.0.0; x86_64) unknown (Codex Desktop; 2026.1118)"
        );
        config.app_version = Some("1.2.3".to_owned().try_into().unwrap());
        let id = Identity::new(&config, Some(&release));
        assert_eq!(id.version, "1.2.3");
        assert!(id.user_agent.ends_with("(Codex Desktop; 2026.1118)"));
    }

    #[test]
    fn os_release_maps_like_the_official_client() {
        assert_eq!(
            platform_from_os_release("ID=debian\nVERSION_ID=\"12\"\n"),
            "Debian 12.0.0"
        );
        assert_eq!(
            platform_from_os_release("NAME=\"Ubuntu\"\nID=ubuntu\nVERSION_ID=\"22.04\"\n"),
            "Ubuntu 22.4.0"
        );
        assert_eq!(
            platform_from_os_release("NAME=\"Gentoo\"\nID=gentoo\n"),
            "Gentoo 0.0.0"
        );
    }

    #[test]
    fn detected_identity_is_well_formed() {
        let id = Identity::new(&ClientIdentityConfig::default(), None);
        let (head, rest) = id.user_agent.split_once(" (").unwrap();
        assert_eq!(head, "codex_cli_rs/0.146.0");
        assert!(
            rest.contains("; ") && rest.ends_with(") unknown"),
            "{}",
            id.user_agent
        );
    }
}
