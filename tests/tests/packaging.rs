//! packaging/: the systemd units verify, the plists parse with the keys launchd needs, the
//! Homebrew formula is valid Ruby, and the .deb (built by `packaging/debian/build-deb.sh`,
//! which CI runs first) holds what it must.
//!
//! A missing tool skips its check with a note, unless `CODEX_PROXY_PACKAGING_CHECKS=require`
//! (set by `.ci/run`), where it fails.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use codex_proxy_tests::harness::workspace_binary;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap()
}

/// Whether `tool` can run; otherwise skip (or fail when checks are required).
fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CODEX_PROXY_PACKAGING_CHECKS").as_deref() != Ok("require"),
            "{tool} is required for the packaging checks"
        );
        println!("{tool} not installed: check skipped");
    }
    found
}

/// The unit with its binaries pointing at this build (verify checks that they exist).
fn unit_for_this_build(path: &str, dir: &Path) -> PathBuf {
    let text = read(path).replace(
        "/usr/bin/codex-proxy",
        workspace_binary("codex-proxy").to_str().unwrap(),
    );
    let out = dir.join("codex-proxy.service");
    std::fs::write(&out, text).unwrap();
    out
}

/// Runs a `systemd-analyze verify`: it must pass without a warning about the unit.
fn verify(command: &mut Command) {
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("codex-proxy.service"),
        "warnings: {stderr}"
    );
}

#[test]
fn system_unit_is_hardened_and_verifies() {
    let unit = read("packaging/systemd/codex-proxy.service");
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "ExecStartPre=/usr/bin/codex-proxy --check-config",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "User=codex-proxy",
        "Group=codex-proxy",
        "StateDirectory=codex-proxy",
        "StateDirectoryMode=0700",
        "RuntimeDirectory=codex-proxy",
        "ConfigurationDirectory=codex-proxy",
        "UMask=0077",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=\n",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter=@system-service",
        "WantedBy=multi-user.target",
    ] {
        assert!(unit.contains(line), "the unit lacks `{}`", line.trim());
    }
    if !have("systemd-analyze") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = unit_for_this_build("packaging/systemd/codex-proxy.service", dir.path());
    verify(Command::new("systemd-analyze").arg("verify").arg(&path));
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(&path)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&security.stdout);
    let exposure: f64 = report
        .lines()
        .find_map(|l| l.split("codex-proxy.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {report}"));
    println!("systemd-analyze security: exposure {exposure} (0 = locked down, 10 = exposed)");
    assert!(exposure <= 2.0, "the unit's exposure rose to {exposure}");
}

/// The seconds of `key=Ns` in a unit.
fn unit_seconds(unit: &str, key: &str) -> u64 {
    unit.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().strip_suffix('s'))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no `{key}Ns` in the unit"))
}

#[test]
fn stop_timeouts_cover_the_drain_and_a_running_refresh() {
    let bound = codex_proxy::service::run::STOP_BOUND.as_secs();
    for file in [
        "packaging/systemd/codex-proxy.service",
        "packaging/systemd/user/codex-proxy.service",
    ] {
        let stop = unit_seconds(&read(file), "TimeoutStopSec=");
        assert!(stop >= bound, "{file}: TimeoutStopSec={stop}s < {bound}s");
    }
    for file in [
        "packaging/launchd/com.codex-proxy.daemon.plist",
        "packaging/launchd/com.codex-proxy.agent.plist",
    ] {
        let plist = read(file);
        let stop: u64 = plist
            .split("<key>ExitTimeOut</key>")
            .nth(1)
            .and_then(|rest| rest.split("<integer>").nth(1))
            .and_then(|rest| rest.split("</integer>").next())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{file} has no ExitTimeOut"));
        assert!(stop >= bound, "{file}: ExitTimeOut {stop} < {bound}");
    }
}

#[test]
fn user_unit_verifies() {
    let unit = read("packaging/systemd/user/codex-proxy.service");
    assert!(unit.contains("Type=notify") && unit.contains("WantedBy=default.target"));
    assert!(!unit.contains("User="), "a user unit runs as its user");
    if !have("systemd-analyze") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = unit_for_this_build("packaging/systemd/user/codex-proxy.service", dir.path());
    let runtime = dir.path().join("runtime");
    std::fs::create_dir(&runtime).unwrap();
    verify(
        Command::new("systemd-analyze")
            .args(["--user", "verify"])
            .arg(&path)
            .env("XDG_RUNTIME_DIR", &runtime),
    );
}

#[test]
fn sysusers_creates_the_service_user() {
    let conf = read("packaging/systemd/sysusers.d/codex-proxy.conf");
    assert!(
        conf.lines()
            .any(|l| l.starts_with("u codex-proxy - ") && l.contains("/var/lib/codex-proxy")),
        "{conf}"
    );
}

#[test]
fn launchd_plists_parse_and_have_the_required_keys() {
    if !have("python3") {
        return;
    }
    for (file, extra) in [
        (
            "packaging/launchd/com.codex-proxy.daemon.plist",
            &["UserName", "GroupName"][..],
        ),
        ("packaging/launchd/com.codex-proxy.agent.plist", &[][..]),
    ] {
        let script =
            "import json, plistlib, sys\nprint(json.dumps(plistlib.load(open(sys.argv[1], 'rb'))))";
        let out = Command::new("python3")
            .args(["-c", script])
            .arg(root().join(file))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let plist: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for key in [
            "Label",
            "ProgramArguments",
            "StandardOutPath",
            "StandardErrorPath",
        ]
        .iter()
        .chain(extra)
        {
            assert!(plist.get(key).is_some(), "{file} lacks {key}");
        }
        assert_eq!(plist["RunAtLoad"], true, "{file}");
        assert_eq!(plist["KeepAlive"], true, "{file}");
        assert!(
            plist["ProgramArguments"][0]
                .as_str()
                .unwrap()
                .ends_with("/bin/codex-proxy")
        );
    }
}

#[test]
fn homebrew_formula_is_valid_ruby_with_service_and_test() {
    let formula = read("packaging/homebrew/codex-proxy.rb");
    for needle in [
        "class CodexProxy < Formula",
        "depends_on \"rust\" => :build",
        "std_cargo_args(path: \"daemon\")",
        "std_cargo_args(path: \"ctl\")",
        "generate_completions_from_executable(bin/\"codexctl\", \"completions\")",
        "service do",
        "test do",
        "codexctl status",
    ] {
        assert!(formula.contains(needle), "the formula lacks `{needle}`");
    }
    if !have("ruby") {
        return;
    }
    let out = Command::new("ruby")
        .arg("-c")
        .arg(root().join("packaging/homebrew/codex-proxy.rb"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Syntax OK"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_deb_holds_binaries_units_config_and_completions() {
    let debs: Vec<PathBuf> = std::fs::read_dir(root().join("target/debian"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "deb"))
                .collect()
        })
        .unwrap_or_default();
    let Some(deb) = debs.first() else {
        assert!(
            std::env::var("CODEX_PROXY_PACKAGING_CHECKS").as_deref() != Ok("require"),
            "no .deb in target/debian: run packaging/debian/build-deb.sh first"
        );
        println!("no .deb built (packaging/debian/build-deb.sh): check skipped");
        return;
    };
    if !have("dpkg-deb") {
        return;
    }
    let listing = Command::new("dpkg-deb")
        .arg("-c")
        .arg(deb)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    for path in [
        "./usr/bin/codex-proxy",
        "./usr/bin/codexctl",
        "./usr/lib/systemd/system/codex-proxy.service",
        "./usr/lib/systemd/user/codex-proxy.service",
        "./usr/lib/sysusers.d/codex-proxy.conf",
        "./etc/codex-proxy/config.toml",
        "./usr/share/bash-completion/completions/codexctl",
        "./usr/share/zsh/vendor-completions/_codexctl",
        "./usr/share/fish/vendor_completions.d/codexctl.fish",
        "./usr/share/doc/codex-proxy/copyright",
    ] {
        assert!(listing.contains(path), "the .deb lacks {path}:\n{listing}");
    }
    let info = Command::new("dpkg-deb")
        .arg("-I")
        .arg(deb)
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(info.contains("Package: codex-proxy"), "{info}");
    assert!(
        info.contains("Depends:") && info.contains("systemd"),
        "{info}"
    );
    assert!(info.contains("conffiles") && info.contains("postinst") && info.contains("prerm"));

    let control = tempfile::tempdir().unwrap();
    let status = Command::new("dpkg-deb")
        .arg("-e")
        .arg(deb)
        .arg(control.path())
        .status()
        .unwrap();
    assert!(status.success());
    let script = |name: &str| std::fs::read_to_string(control.path().join(name)).unwrap();
    assert_eq!(script("conffiles").trim(), "/etc/codex-proxy/config.toml");
    let postinst = script("postinst");
    assert!(!postinst.contains("#DEBHELPER#"), "snippets filled in");
    assert!(postinst.contains("systemd-sysusers"), "creates the user");
    assert!(
        postinst.contains("deb-systemd-helper enable codex-proxy.service"),
        "enables"
    );
    assert!(
        !postinst.contains("deb-systemd-invoke start"),
        "does not start before an account exists"
    );
    assert!(
        postinst.contains("try-restart"),
        "restarts after an upgrade"
    );
    let prerm = script("prerm");
    assert_eq!(
        prerm.matches("deb-systemd-invoke stop").count(),
        1,
        "{prerm}"
    );
    assert!(
        prerm.contains("[ \"$1\" = remove ]; then\n\tdeb-systemd-invoke stop"),
        "stops only on remove, never on upgrade:\n{prerm}"
    );
}
