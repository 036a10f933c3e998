//! Image references and ids as Docker reads them: pure parsing, below every other spec module.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use oci_client::Reference;

/// Distinct references remembered by `canonical_reference` before it starts over.
const REMEMBERED: usize = 4096;

/// The fully qualified form of an image reference, the way Docker resolves it
/// (`busybox` → `docker.io/library/busybox:latest`).
///
/// Parsing takes a regular expression; a pass over 1000 apps asks for the same few references
/// thousands of times (each app's image, each engine tag), so answers are remembered.
pub fn canonical_reference(reference: &str) -> Result<String, String> {
    static KNOWN: LazyLock<Mutex<HashMap<String, Result<String, String>>>> =
        LazyLock::new(Default::default);
    let known = || KNOWN.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(answer) = known().get(reference) {
        return answer.clone();
    }
    let answer = parse(reference);
    let mut known = known();
    if known.len() >= REMEMBERED {
        known.clear();
    }
    known.insert(reference.to_string(), answer.clone());
    answer
}

fn parse(reference: &str) -> Result<String, String> {
    if reference
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
        || reference.len() > 512
    {
        return Err(format!("invalid image reference {reference:?}"));
    }
    Reference::try_from(reference)
        .map(|r| r.whole())
        .map_err(|e| format!("invalid image reference {reference:?}: {e}"))
}

/// Is `s` a full image id (`sha256:` and 64 lower-case hex digits)?
pub fn is_image_id(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}
