//! Hostile input against the spec reader and validator: alias bombs, deep nesting, huge
//! strings, duplicate keys, and a property run over arbitrary and near-valid documents that must
//! end in `Ok` or an error, never a panic. `PROPTEST_CASES` sets the number of cases (CI runs
//! the default, bounded).

use std::time::{Duration, Instant};

use proptest::prelude::*;
use wharf::spec::{Format, parse_documents, read_bundle};

const APP: &str =
    "apiVersion: wharf/v1\nkind: App\nmetadata:\n  name: web\nspec:\n  image: busybox\n";

fn refused_quickly(text: &str, format: Format) -> String {
    let started = Instant::now();
    let errors = read_bundle(text, format, Some("hostile.yaml")).expect_err("refused");
    // Not a timing assertion on the happy path: a bomb that expands takes minutes or the heap.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_yaml_alias_bomb_is_refused() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    text.push_str("apiVersion: wharf/v1\nkind: App\nmetadata: {name: bomb}\nspec: {image: busybox, command: *a11}\n");
    let message = refused_quickly(&text, Format::Yaml);
    assert!(message.contains("hostile.yaml"), "{message}");
}

#[test]
fn deep_nesting_is_refused_in_yaml_and_json() {
    let deep_yaml = format!("{APP}  env: {}1{}\n", "[".repeat(500), "]".repeat(500));
    let message = refused_quickly(&deep_yaml, Format::Yaml);
    assert!(!message.is_empty());
    let deep_json = format!(
        r#"{{"apiVersion":"wharf/v1","kind":"App","metadata":{{"name":"a"}},"spec":{{"image":"x","env":{}1{}}}}}"#,
        "[".repeat(100),
        "]".repeat(100)
    );
    let message = refused_quickly(&deep_json, Format::Json);
    assert!(message.contains("nested deeper"), "{message}");
}

#[test]
fn huge_strings_are_refused_with_their_field() {
    let big = "x".repeat(100 << 10);
    let text = format!("{APP}  env:\n    BIG: {big}\n");
    let message = refused_quickly(&text, Format::Yaml);
    assert!(message.contains("spec.env.BIG"), "{message}");
    assert!(message.contains("the limit is 65536"), "{message}");
}

#[test]
fn duplicate_json_keys_are_refused() {
    let text = r#"{"apiVersion":"wharf/v1","kind":"App","metadata":{"name":"a"},"spec":{"image":"x","image":"y"}}"#;
    let message = refused_quickly(text, Format::Json);
    assert!(message.contains("duplicate key \"image\""), "{message}");
    let yaml = format!("{APP}  image: other\n");
    refused_quickly(&yaml, Format::Yaml);
}

#[test]
fn path_traversal_and_option_injection_are_refused_in_specs() {
    let cases = [
        (
            "  volumes:\n    - {hostPath: /srv/../etc, mountPath: /x}\n",
            "spec.volumes[0].hostPath",
        ),
        (
            "  devices:\n    - {hostPath: /dev/../etc/shadow}\n",
            "spec.devices[0].hostPath",
        ),
        ("  workingDir: relative/dir\n", "spec.workingDir"),
        ("  owner: --help\n", "spec.owner"),
        (
            "  capabilities: {add: [\"--privileged\"]}\n",
            "spec.capabilities.add[0]",
        ),
    ];
    for (extra, field) in cases {
        let message = refused_quickly(&format!("{APP}{extra}"), Format::Yaml);
        assert!(message.contains(field), "{extra}: {message}");
    }
    let message = refused_quickly(
        "apiVersion: wharf/v1\nkind: App\nmetadata:\n  name: ../etc\nspec:\n  image: busybox\n",
        Format::Yaml,
    );
    assert!(message.contains("metadata.name"), "{message}");
}

/// Near-valid App documents: known field names with values of any shape.
fn near_valid_yaml() -> impl Strategy<Value = String> {
    let field = prop::sample::select(vec![
        "image",
        "owner",
        "state",
        "command",
        "env",
        "ports",
        "resources",
        "volumes",
        "restartPolicy",
        "healthcheck",
        "portArea",
        "privileged",
        "hostNetwork",
        "devices",
        "capabilities",
        "update",
        "workingDir",
        "stopGracePeriod",
        "bogus",
    ]);
    let value = prop_oneof![
        Just("busybox".to_string()),
        Just("[1, 2, 3]".to_string()),
        Just("{memory: 64Mi, cpus: 0.5}".to_string()),
        Just("{name: a, mountPath: /a}".to_string()),
        Just("[{hostPath: /srv, mountPath: /x}]".to_string()),
        Just("\"8080:80/tcp\"".to_string()),
        Just("~".to_string()),
        Just("*missing".to_string()),
        "[a-zA-Z0-9:/._-]{0,20}",
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| n.to_string()),
    ];
    prop::collection::vec((field, value), 0..8).prop_map(|fields| {
        let mut doc =
            String::from("apiVersion: wharf/v1\nkind: App\nmetadata:\n  name: p\nspec:\n");
        for (f, v) in fields {
            doc.push_str(&format!("  {f}: {v}\n"));
        }
        doc
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        let _ = read_bundle(&text, Format::Yaml, None);
        let _ = read_bundle(&text, Format::Json, None);
    }

    #[test]
    fn arbitrary_bytes_as_lossy_text_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_documents(&text, Format::Yaml, None);
    }

    #[test]
    fn near_valid_documents_never_panic(doc in near_valid_yaml()) {
        if let Ok(docs) = read_bundle(&doc, Format::Yaml, None) {
            // What validates also round-trips through JSON the way the API stores it.
            let json = serde_json::to_string(&docs[0].document.to_value()).expect("json");
            prop_assert!(read_bundle(&json, Format::Json, None).is_ok(), "{}", json);
        }
    }
}
