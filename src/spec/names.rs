//! The rules for names wharf accepts: namespaces, object names, owners, label keys, host
//! paths and capability names. Pure checks with a message for the field at fault.

/// Is `s` a valid namespace (a DNS label: lower-case letters, digits, `-`; at most 63)?
pub fn check_namespace(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid namespace {s:?}: use lower-case letters, digits and '-', at most 63, not starting or ending with '-'"
        ))
    }
}

/// Is `s` a valid app name (letters, digits, `-`, `_`, `.`; starts and ends alphanumeric; at
/// most 63)? SRC-style `IMAGE--USER` names are valid.
pub fn check_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid name {s:?}: use letters, digits, '-', '_' and '.', at most 63, starting and ending with a letter or digit"
        ))
    }
}

/// Owner (user) names as the SRC API defined them: letters, digits, `-`, `_`; no leading dash
/// and no `--` (which separates image and user in `IMAGE--USER` app names).
pub fn check_owner(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        && !s.starts_with('-')
        && !s.contains("--");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid owner {s:?}: use letters, digits, '-' and '_', no leading '-' and no '--'"
        ))
    }
}

/// A capability name as Docker wants it: upper case, without `CAP_` (`ALL` is kept).
pub fn normalise_capability(s: &str) -> Result<String, String> {
    let upper = s.trim().to_ascii_uppercase();
    let name = upper.strip_prefix("CAP_").unwrap_or(&upper);
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
    if ok {
        Ok(name.to_string())
    } else {
        Err(format!("{s:?} is not a capability name (e.g. NET_ADMIN)"))
    }
}

/// An absolute host path without `..` components, NUL or `:` (Docker's mount separator).
pub(crate) fn check_host_path(s: &str) -> Result<(), String> {
    if !s.starts_with('/') || s.contains('\0') || s.contains(':') || s.len() > 4096 {
        return Err(format!("{s:?} must be an absolute path without ':'"));
    }
    if s.split('/').any(|c| c == "..") {
        return Err(format!("{s:?} must not contain '..'"));
    }
    Ok(())
}

pub(crate) fn check_label_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
}
