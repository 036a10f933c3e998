//! Committed artefacts: the JSON Schemas are current, every example spec validates, and the
//! modules import each other without cycles.

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
    // The node agent's global service is one swarm mode accepts.
    let agent = wharf::cli::read_paths(&[root.join("examples/specs/swarm-agent.yaml")])
        .expect("the agent's service validates");
    for (_, doc) in &agent {
        if let wharf::spec::Object::App(app) = &doc.object {
            let refused = wharf::spec::mode::check(app, wharf::spec::mode::Mode::Swarm);
            assert!(refused.is_empty(), "{refused:?}");
            assert!(app.swarm.global, "one task on every node");
        }
    }
}

/// Module paths (`["reconcile", "plan", "app"]`) of the crate's source files, with the names
/// each refers to through `crate::` and `super::` (test code left out).
fn module_references() -> Vec<(Vec<String>, Vec<Vec<String>>)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && path
                    .file_name()
                    .is_some_and(|n| n != "tests.rs" && n != "main.rs")
            {
                files.push(path);
            }
        }
    }
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    files
        .iter()
        .map(|path| {
            let relative = path
                .strip_prefix(&src)
                .expect("under src")
                .with_extension("");
            let mut module: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
                module.pop();
            }
            let text = std::fs::read_to_string(path).expect("source");
            let text = text
                .split("#[cfg(test)]\nmod tests")
                .next()
                .unwrap_or_default();
            let mut refs = Vec::new();
            for (i, _) in text.match_indices("crate::") {
                let rest = &text[i + "crate::".len()..];
                let first = ident(rest);
                let second = rest[first.len()..]
                    .strip_prefix("::")
                    .map(ident)
                    .filter(|s| s.starts_with(|c: char| c.is_ascii_lowercase()));
                refs.push([Some(first), second].into_iter().flatten().collect());
            }
            for (i, _) in text.match_indices("super::") {
                if text[..i].ends_with("super::") {
                    continue;
                }
                let mut rest = &text[i..];
                let mut base = module.clone();
                while let Some(r) = rest.strip_prefix("super::") {
                    base.pop();
                    rest = r;
                }
                let name = ident(rest);
                if name.starts_with(|c: char| c.is_ascii_lowercase()) {
                    base.push(name);
                    refs.push(base);
                }
            }
            (module, refs)
        })
        .collect()
}

/// Between the modules of each folder (and at the top), no module imports one that imports it
/// back, directly or through others.
#[test]
fn modules_import_each_other_without_cycles() {
    let files = module_references();
    let mut scopes: std::collections::BTreeSet<Vec<String>> = [Vec::new()].into();
    for (module, _) in &files {
        for n in 1..module.len() {
            scopes.insert(module[..n].to_vec());
        }
    }
    for scope in scopes {
        let depth = scope.len() + 1;
        let mut edges: std::collections::BTreeMap<
            Vec<String>,
            std::collections::BTreeSet<Vec<String>>,
        > = Default::default();
        for (module, refs) in &files {
            if module.len() < depth || !module.starts_with(&scope) {
                continue;
            }
            let from = module[..depth].to_vec();
            for r in refs {
                if r.len() >= depth && r.starts_with(&scope) && r[..depth] != from[..] {
                    edges
                        .entry(from.clone())
                        .or_default()
                        .insert(r[..depth].to_vec());
                }
            }
        }
        // Depth-first search for a path that comes back to where it started.
        fn visit(
            node: &Vec<String>,
            edges: &std::collections::BTreeMap<
                Vec<String>,
                std::collections::BTreeSet<Vec<String>>,
            >,
            path: &mut Vec<Vec<String>>,
            done: &mut std::collections::BTreeSet<Vec<String>>,
        ) {
            if let Some(at) = path.iter().position(|n| n == node) {
                let cycle: Vec<String> = path[at..].iter().map(|m| m.join("::")).collect();
                panic!(
                    "import cycle: {} -> {}",
                    cycle.join(" -> "),
                    node.join("::")
                );
            }
            if done.contains(node) {
                return;
            }
            path.push(node.clone());
            for next in edges.get(node).into_iter().flatten() {
                visit(next, edges, path, done);
            }
            path.pop();
            done.insert(node.clone());
        }
        let mut done = Default::default();
        for node in edges.keys() {
            visit(node, &edges, &mut Vec::new(), &mut done);
        }
    }
}

/// `examples/systemd/wharf.service` parses without a warning (every key known, every value
/// valid) and keeps systemd's own exposure score at 2.5 or better ("OK"). Needs
/// `systemd-analyze` (Debian's systemd package).
#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let unit = std::fs::read_to_string(root.join("examples/systemd/wharf.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/wharf "), "{unit}");
    // verify wants the program to exist: the test's own build stands in for the installed one.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wharf.service");
    std::fs::write(
        &file,
        unit.replace("/usr/local/bin/wharf", env!("CARGO_BIN_EXE_wharf")),
    )
    .unwrap();
    let analyze = |args: &[&str]| {
        std::process::Command::new("systemd-analyze")
            .args(args)
            .arg(&file)
            .output()
            .expect("systemd-analyze runs (Debian: apt-get install systemd)")
    };
    let verify = analyze(&["verify"]);
    let said = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
    let security = analyze(&["security", "--offline=true", "--threshold=25"]);
    assert!(
        security.status.success(),
        "exposure above 2.5:\n{}",
        String::from_utf8_lossy(&security.stdout)
    );
}

/// The OpenAPI document has every route of the route table with its need, every route outside
/// it, unique operation ids, and only references that resolve; each of its schemas compiles.
#[test]
fn the_openapi_document_has_every_route() {
    let document = wharf::http::routes::openapi_document();
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().expect("paths");
    let mut expected: Vec<(String, String)> = wharf::http::api_routes()
        .iter()
        .map(|r| {
            let path = format!("/api/v1{}", r.path);
            let op = &paths
                .get(&path)
                .unwrap_or_else(|| panic!("{path} is not in the document"))
                [r.method.as_str().to_ascii_lowercase()];
            assert!(op.is_object(), "{} {path} is not in the document", r.method);
            assert_eq!(
                op["security"],
                serde_json::json!([{ "bearer": [] }]),
                "{path}"
            );
            let description = op["description"].as_str().unwrap_or_default();
            assert!(
                description.contains(&format!("Needs: {}.", r.need)),
                "{} {path}: the description does not name the need {}",
                r.method,
                r.need
            );
            assert!(op["x-wharf-need"].is_object(), "{path}: x-wharf-need");
            for status in ["401", "403"] {
                assert!(op["responses"][status].is_object(), "{path}: no {status}");
            }
            (r.method.as_str().to_string(), path)
        })
        .collect();
    for (method, path) in [
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("POST", "/api/v1/hooks/git"),
        ("GET", "/api/v1/openapi.json"),
    ] {
        expected.push((method.into(), path.into()));
    }
    let mut documented: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("path item")
                .keys()
                .map(|m| (m.to_ascii_uppercase(), path.clone()))
        })
        .collect();
    expected.sort();
    documented.sort();
    assert_eq!(
        documented, expected,
        "the document's operations are the routes"
    );

    let mut ids: Vec<&str> = paths
        .values()
        .flat_map(|item| item.as_object().expect("path item").values())
        .map(|op| op["operationId"].as_str().expect("operationId"))
        .collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "operation ids are unique");

    let text = document.to_string();
    for reference in text.split("\"$ref\":\"").skip(1) {
        let target = reference.split('"').next().unwrap_or_default();
        let pointer = target.strip_prefix('#').expect("a local reference");
        assert!(
            document.pointer(pointer).is_some(),
            "{target} does not resolve"
        );
    }
    let schemas = document["components"]["schemas"]
        .as_object()
        .expect("schemas");
    let validator = |schema: &serde_json::Value, what: &str| {
        let root = serde_json::json!({
            "allOf": [schema],
            "components": { "schemas": schemas },
        });
        jsonschema::validator_for(&root).unwrap_or_else(|e| panic!("{what}: {e}"))
    };
    for name in schemas.keys() {
        validator(
            &serde_json::json!({ "$ref": format!("#/components/schemas/{name}") }),
            name,
        );
    }
    // Every JSON example validates against its schema: request bodies and errors.
    let mut examples = 0;
    let mut check = |media: &serde_json::Value, what: &str| {
        if let Some(example) = media.get("example") {
            let v = validator(&media["schema"], what);
            assert!(
                v.is_valid(example),
                "{what}: the example does not validate: {example}"
            );
            examples += 1;
        }
    };
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            if let Some(media) = op["requestBody"]["content"].get("application/json") {
                check(media, &format!("{method} {path}"));
            }
        }
    }
    for (name, response) in document["components"]["responses"]
        .as_object()
        .expect("responses")
    {
        check(&response["content"]["application/json"], name);
    }
    assert!(examples >= 15, "{examples} examples");
}
