//! Image references and ids as Docker reads them: pure parsing, below every other spec module.

use oci_client::Reference;

/// The fully qualified form of an image reference, the way Docker resolves it
/// (`busybox` → `docker.io/library/busybox:latest`).
pub fn canonical_reference(reference: &str) -> Result<String, String> {
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
