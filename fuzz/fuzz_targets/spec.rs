//! The spec reader and validator on arbitrary input: YAML and JSON, as files and API bodies
//! arrive. Any outcome but a panic (or a hang, or a blow-up in memory) is fine.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wharf::spec::{Format, read_bundle};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for format in [Format::Yaml, Format::Json] {
        if let Ok(docs) = read_bundle(text, format, Some("fuzz.yaml")) {
            // What validates round-trips through JSON, the way the API stores it.
            let values: Vec<serde_json::Value> =
                docs.iter().map(|d| d.document.to_value()).collect();
            let json = serde_json::to_string(&values).unwrap_or_default();
            assert!(
                read_bundle(&json, Format::Json, None).is_ok(),
                "a valid bundle must read back from its JSON: {json}"
            );
        }
    }
});
