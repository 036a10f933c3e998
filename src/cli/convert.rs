//! `wharf convert -f compose.yaml [-n NS] [-o DIR] [--mode solo|swarm] [--strict]`: a compose
//! file as wharf documents, offline. Every key left behind is listed on stderr with why; the
//! documents are validated before anything is written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::client::{CliError, CliResult, Exit};
use crate::compose::{Options, convert_file};
use crate::spec::mode::Mode;

/// Converts `file`; writes one `NAME.yaml` per service into `out`, or every document to
/// stdout. Exit 0 (warnings on stderr), 3 when a document is invalid or, with `strict`, when
/// anything was left behind.
pub fn convert(
    file: &Path,
    namespace: &str,
    mode: Mode,
    out: Option<&Path>,
    strict: bool,
) -> CliResult {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let options = Options {
        namespace: namespace.to_string(),
        mode,
    };
    let converted =
        convert_file(file, &env, &options).map_err(|e| CliError::new(Exit::Invalid, e))?;
    let label = file.display();
    for w in &converted.warnings {
        eprintln!("{label}: {w}");
    }
    let docs: Vec<Value> = converted
        .services
        .iter()
        .flat_map(|(_, docs)| docs.iter().cloned())
        .collect();
    if docs.is_empty() {
        return Err(CliError::new(
            Exit::Invalid,
            format!("{label}: no service could be converted"),
        ));
    }
    let checked = crate::spec::parse::parse_values(docs)
        .and_then(|parsed| crate::spec::validate_bundle(parsed, None));
    if let Err(errors) = checked {
        let text: Vec<String> = errors.iter().map(|e| format!("{label}: {e}")).collect();
        return Err(CliError::new(
            Exit::Invalid,
            format!(
                "{}\nthe converted documents are invalid; nothing was written",
                text.join("\n")
            ),
        ));
    }
    match out {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| write_error(dir, &e))?;
            for (name, docs) in &converted.services {
                let path: PathBuf = dir.join(format!("{name}.yaml"));
                std::fs::write(&path, yaml(docs)?).map_err(|e| write_error(&path, &e))?;
                eprintln!("wrote {}", path.display());
            }
        }
        None => {
            let all: Vec<Value> = converted
                .services
                .iter()
                .flat_map(|(_, docs)| docs.iter().cloned())
                .collect();
            print!("{}", yaml(&all)?);
        }
    }
    if strict && !converted.warnings.is_empty() {
        return Err(CliError::new(
            Exit::Invalid,
            format!(
                "--strict: {} key(s) not carried over (listed above)",
                converted.warnings.len()
            ),
        ));
    }
    Ok(Exit::Ok)
}

/// Documents as one YAML stream.
fn yaml(docs: &[Value]) -> Result<String, CliError> {
    let mut text = String::new();
    for doc in docs {
        let one = serde_saphyr::to_string(doc)
            .map_err(|e| CliError::new(Exit::Failure, format!("writing YAML: {e}")))?;
        text.push_str("---\n");
        text.push_str(&one);
        if !one.ends_with('\n') {
            text.push('\n');
        }
    }
    Ok(text)
}

fn write_error(path: &Path, e: &std::io::Error) -> CliError {
    CliError::new(Exit::Failure, format!("{}: {e}", path.display()))
}
