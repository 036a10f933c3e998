//! Committed artefacts: the JSON Schemas are current, and every example spec validates.

use std::path::Path;

#[test]
fn committed_schemas_are_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    for (file, text) in wharf::schemas::published().expect("schemas serialise") {
        let path = dir.join(file);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == text,
            "{} is stale: run `cargo run -- schema --out schemas` and commit the result",
            path.display()
        );
    }
}

#[test]
fn example_specs_validate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut count = 0;
    for dir in ["specs", "examples/specs"] {
        let docs = wharf::cli::read_paths(&[root.join(dir)]).unwrap_or_else(|errors| {
            panic!(
                "{dir}: {}",
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
        count += docs.len();
    }
    assert!(count >= 3, "expected example specs, found {count}");
}
