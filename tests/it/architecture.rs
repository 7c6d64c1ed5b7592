//! The shape ARCHITECTURE.md promises, checked on the source: data flows one way, so no module
//! of `src/` reaches another that reaches back (directly or around a loop). A module's own
//! submodules and its ancestors do not count: a parent and its children are one room.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every module of the library (`input::cell`, `store`, ...) with its source, tests cut off.
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).expect("src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
                continue;
            }
            let rel = path.strip_prefix("src").expect("under src");
            let rel = rel.with_extension("");
            let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into()).collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            if parts.is_empty() || parts[0] == "bin" || parts == ["lib"] || parts == ["main"] {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read");
            let code = match text.find("#[cfg(test)]\nmod tests") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            out.insert(parts.join("::"), code);
        }
    }
    let mut out = BTreeMap::new();
    walk(Path::new("src"), &mut out);
    out
}

/// The paths named after `crate::` in `code`, groups (`crate::{a, b::c}`) unfolded.
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            out.extend(group[..end].split(',').map(|p| p.trim().to_string()));
        } else {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            out.push(rest[..end].to_string());
        }
    }
    out
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let modules = modules();
    assert!(
        modules.contains_key("store::sqlite"),
        "read from the crate root"
    );
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (name, code) in &modules {
        for path in crate_paths(code) {
            let parts: Vec<&str> = path.split("::").collect();
            // The longest module the path names.
            let target = (1..=parts.len())
                .rev()
                .map(|k| parts[..k].join("::"))
                .find_map(|m| modules.get_key_value(&m).map(|(k, _)| k.as_str()));
            if let Some(target) = target {
                let related = name.starts_with(&format!("{target}::"))
                    || target.starts_with(&format!("{name}::"));
                if target != name && !related {
                    edges.entry(name).or_default().insert(target);
                }
            }
        }
    }
    // A loop is a path from a module back to itself.
    for start in edges.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<(&str, Vec<&str>)> = vec![(start, vec![start])];
        while let Some((at, trail)) = stack.pop() {
            for next in edges.get(at).into_iter().flatten() {
                assert!(
                    next != start,
                    "a loop of imports: {}",
                    [&trail[..], &[next]].concat().join(" -> ")
                );
                if seen.insert(*next) {
                    stack.push((next, [&trail[..], &[next]].concat()));
                }
            }
        }
    }
}

/// A provider is known by its spec: outside the registry, its own module, the command line's
/// flags (clap declares each provider's at compile time), the fake and the benchmark, no code
/// names one, and no code but a provider's own makes an id.
#[test]
fn no_provider_is_named_outside_its_module_and_the_registry() {
    let allowed = [
        "providers::registry",
        "providers::google",
        "providers::open_library",
        "providers::sru",
        "cli",
    ];
    let mut named = Vec::new();
    for (name, code) in modules() {
        if allowed.contains(&name.as_str()) || name.starts_with("fake_api") {
            continue;
        }
        let own_ids = [
            "google::ID",
            "open_library::ID",
            "sru::SPECS[",
            "ProviderId::named(",
        ];
        for variant in own_ids {
            if code.contains(variant) {
                named.push(format!("{name} names {variant}"));
            }
        }
    }
    assert!(named.is_empty(), "{named:?}");
}
