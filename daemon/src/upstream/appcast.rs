//! The Codex Desktop Sparkle appcast: which app version and build are current.
//!
//! The feed describes the Desktop app, so its values only ever fill in a `Codex Desktop`
//! identity (never the CLI's, whose version the feed does not carry); keys pinned in
//! `[client_identity]` always win.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::state::{APPCAST_FILE, write_private_atomic};

/// The originator of the app the feed describes.
pub const DESKTOP_ORIGINATOR: &str = "Codex Desktop";

/// Sparkle's XML namespace.
const SPARKLE_NS: &str = "http://www.andymatuschak.org/xml-namespaces/sparkle";

/// The largest feed read (the real one is a few KiB per release).
pub const MAX_FEED_BYTES: usize = 4 << 20;

/// The newest release in the feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// `sparkle:shortVersionString`.
    pub app_version: String,
    /// `sparkle:version`.
    pub build_number: String,
}

/// What the last successful poll found, kept in state so a restart without the network keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saved {
    #[serde(flatten)]
    pub release: Release,
    pub fetched_at: i64,
}

/// Parses a Sparkle feed and returns its newest item (by build number; the feed's order breaks
/// ties). Values may be elements of the item or attributes of its enclosure (older feeds).
pub fn parse(xml: &str) -> Result<Release, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| format!("not XML: {e}"))?;
    let mut newest: Option<Release> = None;
    for item in doc.descendants().filter(|n| n.has_tag_name("item")) {
        let field = |name: &str| {
            item.children()
                .find(|c| c.has_tag_name((SPARKLE_NS, name)))
                .and_then(|c| c.text())
                .or_else(|| {
                    item.children()
                        .find(|c| c.has_tag_name("enclosure"))
                        .and_then(|e| e.attribute((SPARKLE_NS, name)))
                })
                .map(str::trim)
        };
        let Some(build) = field("version") else {
            continue;
        };
        let short = field("shortVersionString").unwrap_or(build);
        let (Some(build), Some(short)) = (header_safe(build), header_safe(short)) else {
            return Err("an item's version is not a plain version string".into());
        };
        let release = Release {
            app_version: short.to_owned(),
            build_number: build.to_owned(),
        };
        if newest
            .as_ref()
            .is_none_or(|n| version_key(&release.build_number) > version_key(&n.build_number))
        {
            newest = Some(release);
        }
    }
    newest.ok_or_else(|| "no item carries a sparkle:version".into())
}

/// Versions go into a header, so only short runs of `[0-9A-Za-z._+-]` are taken.
fn header_safe(value: &str) -> Option<&str> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b));
    ok.then_some(value)
}

/// Dotted numeric comparison as Sparkle does it (`2026.1118` > `2026.1102`, `10` > `9`).
fn version_key(version: &str) -> Vec<u64> {
    version
        .split(['.', '-', '+'])
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}

/// The release saved by the last poll, if any.
pub fn load(state_dir: &Path) -> Option<Release> {
    let text = std::fs::read_to_string(state_dir.join(APPCAST_FILE)).ok()?;
    let saved: Saved = serde_json::from_str(&text).ok()?;
    let valid = header_safe(&saved.release.app_version).is_some()
        && header_safe(&saved.release.build_number).is_some();
    valid.then_some(saved.release)
}

/// Saves `release` (blocking I/O).
pub fn save(state_dir: &Path, release: &Release, now: i64) -> anyhow::Result<()> {
    let saved = Saved {
        release: release.clone(),
        fetched_at: now,
    };
    write_private_atomic(&state_dir.join(APPCAST_FILE), &serde_json::to_vec(&saved)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FEED: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:sparkle="http://www.andymatuschak.org/xml-namespaces/sparkle">
  <channel>
    <title>Codex</title>
    <item>
      <title>26.300.10000</title>
      <sparkle:version>2026.1102</sparkle:version>
      <sparkle:shortVersionString>26.300.10000</sparkle:shortVersionString>
    </item>
    <item>
      <title>26.318.11754</title>
      <sparkle:version>2026.1118</sparkle:version>
      <sparkle:shortVersionString>26.318.11754</sparkle:shortVersionString>
      <enclosure url="https://example.invalid/Codex.zip" length="1" type="application/octet-stream"/>
    </item>
  </channel>
</rss>"#;

    #[test]
    fn the_newest_item_wins_whatever_the_order() {
        assert_eq!(
            parse(FEED).unwrap(),
            Release {
                app_version: "26.318.11754".into(),
                build_number: "2026.1118".into(),
            }
        );
    }

    #[test]
    fn enclosure_attributes_are_read_too() {
        let feed = r#"<rss xmlns:s="http://www.andymatuschak.org/xml-namespaces/sparkle"><channel>
            <item><enclosure url="x" s:version="412" s:shortVersionString="1.9.2"/></item>
            <item><enclosure url="y" s:version="99" s:shortVersionString="1.8"/></item>
        </channel></rss>"#;
        let release = parse(feed).unwrap();
        assert_eq!(release.app_version, "1.9.2");
        assert_eq!(release.build_number, "412");
    }

    #[test]
    fn bad_feeds_are_errors_not_panics() {
        assert!(parse("").unwrap_err().contains("not XML"));
        assert!(parse("<rss><channel></channel></rss>").is_err());
        // The prefix must be Sparkle's namespace, not merely spelled `sparkle`.
        assert!(
            parse(r#"<rss xmlns:sparkle="urn:other"><item><sparkle:version>1</sparkle:version></item></rss>"#)
                .is_err()
        );
        let injected = FEED.replace("2026.1118", "1\r\nX-Evil: 1");
        assert!(parse(&injected).is_err());
    }

    #[test]
    fn saved_release_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()), None);
        let release = parse(FEED).unwrap();
        save(dir.path(), &release, 1_700_000_000).unwrap();
        assert_eq!(load(dir.path()), Some(release));
    }
}
