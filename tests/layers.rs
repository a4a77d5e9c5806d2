//! The crate's floors (`src/lib.rs` lists them lowest first): no module imports one on a higher
//! floor, and no file of `src/` is part of an import circle. Read from the source text: every
//! `crate::…` and `super::…` path outside comments and test modules is an import.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The floors, lowest first, as `src/lib.rs` lists its `pub mod` lines: a module may import
/// only from the floors before it.
fn floors() -> Vec<String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let floors: Vec<String> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod ")?.split_once(';'))
        .map(|(name, _)| name.to_string())
        .collect();
    assert!(floors.len() >= 10 && floors[0] == "error", "{floors:?}");
    floors
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `src/` except the crate root and the binaries, relative to `src/`.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if !path.ends_with("bin") {
                files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("lib.rs") {
            out.push(path.strip_prefix(src()).unwrap().to_path_buf());
        }
    }
}

/// The code of a file without its test module and comment lines.
fn code(file: &Path) -> String {
    let text = std::fs::read_to_string(src().join(file)).unwrap();
    let text = text.split("#[cfg(test)]").next().unwrap();
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module paths a file names: the words after each `crate::` / `super::`.
fn paths(code: &str, prefix: &str) -> Vec<Vec<String>> {
    code.match_indices(prefix)
        .map(|(i, _)| {
            let rest = &code[i + prefix.len()..];
            rest.split("::")
                .map_while(|w| {
                    let w: String = w
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    (!w.is_empty() && w.chars().next().unwrap().is_ascii_lowercase()).then_some(w)
                })
                .collect()
        })
        .filter(|p: &Vec<String>| !p.is_empty())
        .collect()
}

/// The file a module path (from `src/`) lives in: the deepest `a/b.rs` or `a/mod.rs` that exists.
fn resolve(segments: &[String]) -> Option<PathBuf> {
    (1..=segments.len()).rev().find_map(|n| {
        let base: PathBuf = segments[..n].iter().collect();
        [base.with_extension("rs"), base.join("mod.rs")]
            .into_iter()
            .find(|p| src().join(p).is_file())
    })
}

fn floor(file: &Path) -> &str {
    let first = file
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_str()
        .unwrap();
    first.strip_suffix(".rs").unwrap_or(first)
}

#[test]
fn no_module_imports_a_higher_floor_and_no_file_is_in_a_circle() {
    let mut all = Vec::new();
    files(&src(), &mut all);
    assert!(all.len() > 30, "found only {} files", all.len());
    let floors = floors();
    let rank = |f: &str| floors.iter().position(|x| x == f);
    let mut upward = Vec::new();
    let mut graph: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for file in &all {
        let text = code(file);
        let here = rank(floor(file)).unwrap_or_else(|| panic!("{file:?} is on no floor"));
        let parent: Vec<String> = file
            .parent()
            .unwrap()
            .components()
            .map(|c| c.as_os_str().to_str().unwrap().to_string())
            .collect();
        let mut targets = Vec::new();
        for path in paths(&text, "crate::") {
            match rank(&path[0]) {
                Some(there) if there > here => {
                    upward.push(format!("{file:?} → crate::{}", path[0]))
                }
                Some(_) => {}
                None => upward.push(format!(
                    "{file:?} names the root re-export crate::{}",
                    path[0]
                )),
            }
            targets.extend(resolve(&path));
        }
        // `super::x` in `a/b.rs` is `a::x`.
        for path in paths(&text, "super::") {
            let full: Vec<String> = parent.iter().cloned().chain(path).collect();
            targets.extend(resolve(&full));
        }
        let edges = graph.entry(file.clone()).or_default();
        // A folder's mod.rs only re-exports: importing it is importing the folder, not a file.
        edges.extend(
            targets
                .into_iter()
                .filter(|t| t != file && !t.ends_with("mod.rs")),
        );
    }
    assert!(
        upward.is_empty(),
        "imports from a lower floor up:\n{}",
        upward.join("\n")
    );

    // Depth-first search for a back edge.
    fn visit(
        node: &PathBuf,
        graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        state: &mut BTreeMap<PathBuf, bool>,
        stack: &mut Vec<PathBuf>,
    ) -> Option<Vec<PathBuf>> {
        match state.get(node) {
            Some(true) => return None,
            Some(false) => {
                let start = stack.iter().position(|n| n == node).unwrap();
                return Some(stack[start..].to_vec());
            }
            None => {}
        }
        state.insert(node.clone(), false);
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, graph, state, stack) {
                return Some(circle);
            }
        }
        stack.pop();
        state.insert(node.clone(), true);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if let Some(circle) = visit(node, &graph, &mut state, &mut Vec::new()) {
            panic!("import circle: {circle:?}");
        }
    }
}

/// A file a reader can hold in their head: none in `src/` over 650 lines (tests included).
#[test]
fn no_source_file_is_over_650_lines() {
    let mut all = Vec::new();
    files(&src(), &mut all);
    let long: Vec<String> = all
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(src().join(f))
                .unwrap()
                .lines()
                .count();
            (n > 650).then(|| format!("{f:?}: {n} lines"))
        })
        .collect();
    assert!(
        long.is_empty(),
        "split these by concern:\n{}",
        long.join("\n")
    );
}

/// A device-to-host read waits for the device, so the crate makes them in one place,
/// `backend.rs` (`to_host_f32`, `scalar`), where `host_reads()` counts them: no other file's code
/// (tests aside) calls a tensor read or a device sync. `tests/host_reads.rs` then counts the
/// reads of every training loop.
#[test]
fn only_the_backend_floor_reads_tensors_back() {
    let reads = [
        ".into_data(",
        ".to_data(",
        ".into_scalar(",
        ".try_into_data(",
        ".try_into_scalar(",
        "into_data_async(",
        ".sync(",
        "::sync(",
    ];
    let mut all = Vec::new();
    files(&src(), &mut all);
    let mut found = Vec::new();
    for file in all.iter().filter(|f| !f.ends_with("backend.rs")) {
        for (n, line) in code(file).lines().enumerate() {
            if let Some(call) = reads.iter().find(|r| line.contains(*r)) {
                found.push(format!("{}:{}: {call}", file.display(), n + 1));
            }
        }
    }
    assert!(all.len() > 40, "{} files", all.len());
    assert!(
        found.is_empty(),
        "device reads outside src/backend.rs (read through `to_host_f32`/`scalar`):\n{}",
        found.join("\n")
    );
}
