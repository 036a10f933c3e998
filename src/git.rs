//! Git inside an app's container: each operation's argv, built from validated parts (never a
//! shell). The API builds it for solo mode; the node agent builds it again from the same
//! operation and parameters before it runs anything, so a server cannot make it run another
//! command.

/// Why no argv could be built.
#[derive(Debug, PartialEq)]
pub enum GitArgError {
    /// No such operation.
    UnknownOp(String),
    /// A parameter is missing or invalid: `(field, message)`.
    Field(&'static str, String),
}

/// An absolute path inside the container, without `..`, control characters or NUL.
pub fn check_git_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!(
            "{path:?} must be an absolute path in the container"
        ));
    }
    if path.len() > 4096 {
        return Err("is longer than 4096 characters".into());
    }
    if path.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    if path.split('/').any(|part| part == "..") {
        return Err(format!("{path:?} must not contain \"..\""));
    }
    Ok(())
}

/// A branch name by git's `check-ref-format` rules, restricted to a safe alphabet.
pub fn check_branch(name: &str) -> Result<(), String> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
    if name.is_empty()
        || name.len() > 255
        || !ok_chars
        || name.starts_with(['-', '/', '.'])
        || name.ends_with(['/', '.'])
        || name.ends_with(".lock")
        || name.contains("..")
        || name.contains("//")
        || name.contains("/.")
    {
        return Err(format!(
            "{name:?} is not a valid branch name (letters, digits, '.', '_', '-', '/'; no leading '-', no \"..\")"
        ));
    }
    Ok(())
}

/// The operations there are.
pub const OPERATIONS: &[&str] = &["pull", "init", "head", "branches", "branch", "checkout"];

/// The argv for `op` on the repository at `path` (`branch`: checkout only).
pub fn argv(
    op: &str,
    path: Option<&str>,
    branch: Option<&str>,
) -> Result<Vec<String>, GitArgError> {
    use GitArgError::Field;
    if !OPERATIONS.contains(&op) {
        return Err(GitArgError::UnknownOp(format!(
            "no git operation {op:?}: use pull, init, head, branches, branch or checkout"
        )));
    }
    let path = path.ok_or_else(|| {
        Field(
            "path",
            "required (the repository's directory in the container)".into(),
        )
    })?;
    check_git_path(path).map_err(|e| Field("path", e))?;
    if op != "checkout" && branch.is_some() {
        return Err(Field(
            "branch",
            format!("only checkout takes a branch, not {op}"),
        ));
    }
    let in_repo = |args: &[&str]| {
        ["git", "-C", path]
            .iter()
            .chain(args)
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    };
    Ok(match op {
        "init" => vec!["git".into(), "init".into(), "--".into(), path.to_string()],
        "pull" => in_repo(&["pull"]),
        "head" => in_repo(&["rev-parse", "HEAD"]),
        "branches" => in_repo(&["branch", "--list", "--format=%(refname:short)"]),
        "branch" => in_repo(&["symbolic-ref", "--short", "HEAD"]),
        _ => {
            let branch = branch.ok_or_else(|| Field("branch", "required for checkout".into()))?;
            check_branch(branch).map_err(|e| Field("branch", e))?;
            in_repo(&["checkout", branch, "--"])
        }
    })
}

/// Whether git's output says it is not installed in the container.
pub fn missing(exit_code: i64, stdout: &str, stderr: &str) -> bool {
    matches!(exit_code, 126 | 127)
        && (stderr.contains("executable file not found")
            || stderr.contains("no such file or directory")
            || stdout.contains("executable file not found"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_paths_and_branches_are_validated() {
        assert!(check_git_path("/home/jovyan/work").is_ok());
        assert!(check_git_path("relative").is_err());
        assert!(check_git_path("/a/../etc").is_err());
        assert!(check_git_path("/a\nb").is_err());
        assert!(check_branch("feature/x-1").is_ok());
        for bad in [
            "-b", "--force", "a..b", "a b", "x.lock", "/x", "a//b", "a;rm", "$(x)",
        ] {
            assert!(check_branch(bad).is_err(), "{bad} accepted");
        }
    }
}
