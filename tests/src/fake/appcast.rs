//! The Codex Desktop Sparkle appcast: newest item first, plus an older one.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{Incoming, Shared};

pub async fn handle(State(shared): State<Arc<Shared>>, req: Incoming) -> Response {
    let seq = shared.record(&req, None, None);
    let (version, build, down) = shared.with(|inner| {
        (
            inner.appcast.0.clone(),
            inner.appcast.1.clone(),
            inner.appcast_down,
        )
    });
    if down {
        shared.set_outcome(seq, 503, Some("the feed is down".into()), None);
        return axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    shared.set_outcome(seq, 200, None, None);
    let xml = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:sparkle="http://www.andymatuschak.org/xml-namespaces/sparkle" xmlns:dc="http://purl.org/dc/elements/1.1/">
  <channel>
    <title>Codex</title>
    <item>
      <title>{version}</title>
      <pubDate>Mon, 23 Nov 2026 18:00:00 +0000</pubDate>
      <sparkle:version>{build}</sparkle:version>
      <sparkle:shortVersionString>{version}</sparkle:shortVersionString>
      <sparkle:minimumSystemVersion>14.0</sparkle:minimumSystemVersion>
      <enclosure url="https://persistent.oaistatic.com/codex-app-prod/Codex-{version}.zip" length="123456789" type="application/octet-stream" sparkle:edSignature="ZmFrZQ=="/>
    </item>
    <item>
      <title>26.300.10000</title>
      <pubDate>Mon, 02 Nov 2026 18:00:00 +0000</pubDate>
      <sparkle:version>2026.1102</sparkle:version>
      <sparkle:shortVersionString>26.300.10000</sparkle:shortVersionString>
      <enclosure url="https://persistent.oaistatic.com/codex-app-prod/Codex-26.300.10000.zip" length="123000000" type="application/octet-stream" sparkle:edSignature="ZmFrZQ=="/>
    </item>
  </channel>
</rss>
"#
    );
    (
        [(header::CONTENT_TYPE, "application/rss+xml; charset=utf-8")],
        xml,
    )
        .into_response()
}
