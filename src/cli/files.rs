//! Spec files on the client side: read (files, directories, stdin) and validated locally, so
//! errors name file, line and field before anything is sent; `wharf validate`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use serde_json::Value;

use crate::spec::{self, Format, SpecError, Validated};

use super::client::{CliError, CliResult, Exit};

/// Reads and validates every document of the given paths (files, directories, `-` for stdin).
pub fn read_paths(paths: &[PathBuf]) -> Result<Vec<(String, Validated)>, Vec<SpecError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut read_one =
        |label: String, text: Result<String, std::io::Error>, format: Format| match text {
            Err(e) => errors.push(SpecError {
                file: Some(label),
                ..SpecError::message(format!("cannot read: {e}"))
            }),
            Ok(text) => match spec::read_bundle(&text, format, Some(&label)) {
                Ok(docs) => out.extend(docs.into_iter().map(|d| (label.clone(), d))),
                Err(e) => errors.extend(e),
            },
        };
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            let r = std::io::stdin().read_to_string(&mut text).map(|_| text);
            read_one("<stdin>".into(), r, Format::Yaml);
        } else if path.is_dir() {
            match crate::source::spec_files(path) {
                Ok(files) => {
                    for f in files {
                        read_one(
                            f.display().to_string(),
                            std::fs::read_to_string(&f),
                            Format::for_path(&f),
                        );
                    }
                }
                Err(e) => read_one(path.display().to_string(), Err(e), Format::Yaml),
            }
        } else {
            read_one(
                path.display().to_string(),
                std::fs::read_to_string(path),
                Format::for_path(path),
            );
        }
    }
    // The same object twice across files is an error too.
    let mut seen: BTreeMap<_, &str> = BTreeMap::new();
    for (file, v) in &out {
        if let Some(first) = seen.insert((v.kind(), v.key().clone()), file) {
            errors.push(SpecError {
                file: Some(file.clone()),
                object: Some(v.describe()),
                line: Some(v.line),
                ..SpecError::message(format!("also declared in {first}"))
            });
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

pub(crate) fn read_or_exit(paths: &[PathBuf]) -> CliResult<Vec<(String, Validated)>> {
    if paths.is_empty() {
        return Err(CliError::new(
            Exit::Usage,
            "give at least one -f FILE|DIR|-",
        ));
    }
    read_paths(paths).map_err(|errors| {
        let text = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        CliError::new(Exit::Invalid, text)
    })
}

pub(crate) fn wire_bundle(docs: &[(String, Validated)]) -> Value {
    Value::Array(docs.iter().map(|(_, v)| v.document.to_value()).collect())
}

/// `wharf validate -f …`: offline.
pub fn validate(paths: &[PathBuf]) -> CliResult {
    let docs = read_or_exit(paths)?;
    for (file, v) in &docs {
        println!("{file}: {} is valid", v.describe());
    }
    Ok(Exit::Ok)
}
