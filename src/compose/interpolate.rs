//! Compose's variables: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
//! `${VAR:?error}`, `${VAR?error}`, `${VAR:+alternative}`, `${VAR+alternative}` (defaults may
//! hold variables themselves) and `$$` for a literal `$`; and the `.env` / `env_file` format.

use std::collections::BTreeMap;

/// Where variables come from: the environment over the `.env` file, as compose does.
#[derive(Clone, Debug, Default)]
pub struct Vars {
    pub values: BTreeMap<String, String>,
}

impl Vars {
    /// Variables from `(name, value)` pairs.
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Self {
            values: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

/// What interpolating one string found wrong or worth saying.
#[derive(Debug, Default)]
pub struct Findings {
    /// Variables used without a value or default (taken as empty, as compose does).
    pub unset: Vec<String>,
}

/// `text` with its variables replaced; `Err` for a `${VAR?error}` whose variable is unset, or
/// a malformed reference.
pub fn interpolate(text: &str, vars: &Vars, found: &mut Findings) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = closing_brace(body)
                .ok_or_else(|| format!("{text:?}: `${{` without its closing `}}`"))?;
            out.push_str(&expand(&body[..end], vars, found)?);
            rest = &body[end + 1..];
        } else {
            let len = after
                .char_indices()
                .take_while(|(_, c)| c.is_ascii_alphanumeric() || *c == '_')
                .count();
            if len == 0 || after.starts_with(|c: char| c.is_ascii_digit()) {
                // A lone `$` stays as it is.
                out.push('$');
                rest = after;
                continue;
            }
            let name = &after[..len];
            match vars.get(name) {
                Some(v) => out.push_str(v),
                None => found.unset.push(name.to_string()),
            }
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The index of the `}` closing a `${`, counting nested `${…}`.
fn closing_brace(body: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn expand(body: &str, vars: &Vars, found: &mut Findings) -> Result<String, String> {
    let name_len = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(body.len());
    let (name, op) = body.split_at(name_len);
    if name.is_empty() {
        return Err(format!("`${{{body}}}` names no variable"));
    }
    let value = vars.get(name);
    let set_nonempty = value.is_some_and(|v| !v.is_empty());
    let word = |w: &str, found: &mut Findings| interpolate(w, vars, found);
    match op {
        "" => match value {
            Some(v) => Ok(v.to_string()),
            None => {
                found.unset.push(name.to_string());
                Ok(String::new())
            }
        },
        _ if op.starts_with(":-") => match set_nonempty {
            true => Ok(value.unwrap_or_default().to_string()),
            false => word(&op[2..], found),
        },
        _ if op.starts_with('-') => match value {
            Some(v) => Ok(v.to_string()),
            None => word(&op[1..], found),
        },
        _ if op.starts_with(":?") => match set_nonempty {
            true => Ok(value.unwrap_or_default().to_string()),
            false => Err(format!("{name}: {}", word(&op[2..], found)?)),
        },
        _ if op.starts_with('?') => match value {
            Some(v) => Ok(v.to_string()),
            None => Err(format!("{name}: {}", word(&op[1..], found)?)),
        },
        _ if op.starts_with(":+") => match set_nonempty {
            true => word(&op[2..], found),
            false => Ok(String::new()),
        },
        _ if op.starts_with('+') => match value {
            Some(_) => word(&op[1..], found),
            None => Ok(String::new()),
        },
        _ => Err(format!("`${{{body}}}`: unknown form after {name:?}")),
    }
}

/// `KEY=VALUE` lines (`.env`, `env_file`): `#` comments, blank lines, an optional `export `,
/// values in single quotes (literal) or double quotes (with `\n`, `\"` and `\\`). A line
/// without `=` is an error naming it.
pub fn parse_env_file(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: expected KEY=VALUE, found {line:?}", n + 1))?;
        let key = key.trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(format!("line {}: {key:?} is not a variable name", n + 1));
        }
        let value = value.trim();
        let value = if let Some(inner) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\''))
        {
            inner.to_string()
        } else if let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            unescape(inner)
        } else {
            // An unquoted value ends at an inline comment.
            match value.find(" #") {
                Some(at) => value[..at].trim_end().to_string(),
                None => value.to_string(),
            }
        };
        out.push((key.to_string(), value));
    }
    Ok(out)
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Splits a command string into words as a POSIX shell would (quotes and backslashes; no
/// expansion), which is what compose does with `command: "…"`.
pub fn shell_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("{s:?}: unclosed single quote")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("{s:?}: unclosed double quote")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("{s:?}: unclosed double quote")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    word.push(c);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_compose_variable_expands() {
        let v = Vars::from_pairs(&[("TAG", "1.36"), ("EMPTY", ""), ("PORT", "8080")]);
        let mut f = Findings::default();
        let mut run = |s: &str| interpolate(s, &v, &mut f);
        assert_eq!(run("busybox:${TAG}").unwrap(), "busybox:1.36");
        assert_eq!(run("busybox:$TAG").unwrap(), "busybox:1.36");
        assert_eq!(run("${EMPTY:-dflt}").unwrap(), "dflt");
        assert_eq!(run("${EMPTY-dflt}").unwrap(), "");
        assert_eq!(run("${NOPE-dflt}").unwrap(), "dflt");
        assert_eq!(run("${NOPE:-${PORT}}").unwrap(), "8080", "nested default");
        assert_eq!(
            run("${TAG:+set}|${EMPTY:+set}|${EMPTY+set}").unwrap(),
            "set||set"
        );
        assert_eq!(run("cost: $$5 and $").unwrap(), "cost: $5 and $");
        assert!(
            run("${NOPE:?needs NOPE}")
                .unwrap_err()
                .contains("needs NOPE")
        );
        assert!(run("${TAG").is_err());
        assert_eq!(run("${NOPE}").unwrap(), "");
        assert_eq!(f.unset, ["NOPE"]);
    }

    #[test]
    fn env_files_and_command_strings_parse_as_compose_reads_them() {
        let parsed = parse_env_file(
            "# db\nexport DB_HOST=db\nDB_PASS='p#ss $x'\nMOTD=\"a\\nb\"\nPLAIN=v # note\n\n",
        )
        .unwrap();
        assert_eq!(
            parsed,
            [
                ("DB_HOST".into(), "db".into()),
                ("DB_PASS".into(), "p#ss $x".into()),
                ("MOTD".into(), "a\nb".into()),
                ("PLAIN".into(), "v".into()),
            ]
        );
        assert!(
            parse_env_file("JUSTAWORD\n")
                .unwrap_err()
                .contains("line 1")
        );
        assert_eq!(
            shell_words(r#"sh -c "echo \"hi\" && sleep 1" 'a b' c\ d"#).unwrap(),
            ["sh", "-c", r#"echo "hi" && sleep 1"#, "a b", "c d"]
        );
        assert!(shell_words("echo 'x").is_err());
    }
}
