//! The layering of ARCHITECTURE.md, checked on the source: every `crate::module` path in a
//! module's code (comments and `#[cfg(test)]` parts aside) names a module of a lower layer, and
//! only `store` reaches into its engines.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// Layer of each top-level module (higher uses lower). `store` and its engines are one layer.
fn layer(module: &str) -> Option<u32> {
    Some(match module {
        "lib" => 100,
        "scim" => 95,
        "auth" | "import" | "patch" => 80,
        // Interchange formats: below the operations, whose PatchRequest parser reads JSON.
        "json" => 75,
        "query" => 70,
        "directory" => 60,
        "store" => 50,
        "password" => 40,
        "identity" | "config" | "clock" | "token" | "backend" | "test_hooks" => 30,
        "error" => 20,
        "model" => 12,
        "user" | "problems" => 10,
        _ => return None,
    })
}

/// The top-level module a source file belongs to (`store` for the boundary and its engines).
fn module_of(rel: &Path) -> String {
    let first = rel
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default();
    first.trim_end_matches(".rs").to_owned()
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without comments and without its unit tests.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn modules_use_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = BTreeSet::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let module = module_of(rel);
        let Some(own) = layer(&module) else {
            violations.insert(format!("{}: module {module} has no layer", rel.display()));
            continue;
        };
        let text = code(&fs::read_to_string(f).unwrap());
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let Some(theirs) = layer(&name) else {
                // A re-exported item (`crate::Error`), not a module.
                continue;
            };
            if name != module && theirs >= own {
                violations.insert(format!("{}: {module} uses {name}", rel.display()));
            }
            if rest.starts_with("store::redb") && module != "store" {
                violations.insert(format!(
                    "{}: {module} reaches into store::redb",
                    rel.display()
                ));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layering violations:\n{violations:#?}"
    );
}

#[test]
fn the_engine_and_its_table_layout_stay_inside_store() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        if module_of(rel) == "store" {
            continue;
        }
        let text = code(&fs::read_to_string(f).unwrap());
        for banned in [
            "use redb",
            "redb::",
            "tables::",
            "KIND_USERNAME",
            "TOKEN_RESET",
        ] {
            assert!(
                !text.contains(banned),
                "{} mentions `{banned}`: storage details belong behind src/store.rs",
                rel.display()
            );
        }
    }
}
