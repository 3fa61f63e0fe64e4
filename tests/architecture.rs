//! The house rules of docs/ARCHITECTURE.md, checked on the source text: no import circles
//! between modules (library and CLI), nothing device-neutral imports `gpu`, and no source
//! file over 1,000 lines. A `use` (or a path written out, `crate::a::B`) names a module, or
//! an item that a module re-exports with `pub use`, which is followed to where it is
//! defined. Test code (`#[cfg(test)]` and test modules) is left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 1000;

/// A module as its path from the crate root, e.g. `["gpu", "kernels", "matmul"]`.
type ModPath = Vec<String>;

struct Crate {
    /// Module path -> its source text.
    modules: BTreeMap<ModPath, String>,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

impl Crate {
    /// The modules under `src/` below `root` (`lib.rs` or `main.rs`), skipping `skip`.
    fn load(root: &str, skip: &[&str]) -> Crate {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let mut modules = BTreeMap::new();
        for f in files {
            let rel = f.strip_prefix(&src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into()).collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            if parts == [root] {
                parts.clear();
            } else if parts.len() == 1 && ["lib", "main"].contains(&parts[0].as_str()) {
                continue;
            }
            if parts.first().is_some_and(|p| skip.contains(&p.as_str())) {
                continue;
            }
            // Test code is not part of the architecture: test modules, and a file's tail
            // from its first `#[cfg(test)]` on (where its unit tests sit).
            if parts.iter().any(|p| p == "tests" || p == "test_util") {
                continue;
            }
            let text = std::fs::read_to_string(&f).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            modules.insert(parts, code.to_string());
        }
        Crate { modules }
    }

    /// Every path a module's `use` declarations name, made absolute (`crate::`, `super::`,
    /// `self::` and child modules resolved); `pub_only` keeps only `pub use` re-exports.
    fn uses(&self, module: &ModPath, pub_only: bool) -> Vec<ModPath> {
        let text = &self.modules[module];
        let mut out = Vec::new();
        let mut rest = text.as_str();
        while let Some(i) = find_use(rest) {
            let (is_pub, body_start) = i;
            let body = &rest[body_start..];
            let end = body.find(';').unwrap_or(body.len());
            if is_pub || !pub_only {
                for p in expand(&body[..end]) {
                    if let Some(abs) = self.absolute(module, &p) {
                        out.push(abs);
                    }
                }
            }
            rest = &body[end..];
        }
        if !pub_only {
            for path in inline_paths(text) {
                if let Some(abs) = self.absolute(module, &path) {
                    out.push(abs);
                }
            }
        }
        out
    }

    fn absolute(&self, module: &ModPath, path: &[String]) -> Option<ModPath> {
        let (mut base, rest): (ModPath, &[String]) = match path.first()?.as_str() {
            "crate" => (vec![], &path[1..]),
            "self" => (module.clone(), &path[1..]),
            "super" => {
                let mut m = module.clone();
                let mut rest = path;
                while rest.first().is_some_and(|s| s == "super") {
                    m.pop();
                    rest = &rest[1..];
                }
                (m, rest)
            }
            first => {
                let mut child = module.clone();
                child.push(first.to_string());
                if !self.modules.contains_key(&child) {
                    return None; // an external crate or std
                }
                (module.clone(), path)
            }
        };
        base.extend(rest.iter().cloned());
        Some(base)
    }

    /// The module that defines what `path` names: its longest module prefix, following
    /// that module's `pub use` re-exports of the next name.
    fn owner(&self, path: &ModPath, depth: usize) -> ModPath {
        let mut m: ModPath = vec![];
        for (i, part) in path.iter().enumerate() {
            let mut next = m.clone();
            next.push(part.clone());
            if self.modules.contains_key(&next) {
                m = next;
                continue;
            }
            if depth < 8 {
                for re in self.uses(&m, true) {
                    if re.last() == Some(part) && re != path[..=i] {
                        return self.owner(&re, depth + 1);
                    }
                }
            }
            break;
        }
        m
    }

    /// Module-level import edges: a module's node and the nodes it imports. A node is a
    /// module cut to `depth` components (`gpu::kernels` for `gpu::kernels::matmul`).
    fn edges(&self, depth: usize) -> BTreeMap<ModPath, BTreeSet<ModPath>> {
        let node = |m: &ModPath| m[..m.len().min(depth)].to_vec();
        let mut edges: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
        for m in self.modules.keys().filter(|m| !m.is_empty()) {
            for used in self.uses(m, false) {
                let to = node(&self.owner(&used, 0));
                let from = node(m);
                // A parent re-exporting its children and children using their parent are
                // one module's insides.
                if !to.is_empty() && !from.starts_with(&to) && !to.starts_with(&from) {
                    edges.entry(from).or_default().insert(to);
                }
            }
        }
        edges
    }
}

/// The next `use` declaration in `text`: whether it is `pub`, and where its path starts.
fn find_use(text: &str) -> Option<(bool, usize)> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        let indent = line.len() - t.len();
        for (prefix, is_pub) in [
            ("use ", false),
            ("pub use ", true),
            ("pub(crate) use ", true),
        ] {
            if t.starts_with(prefix) {
                return Some((is_pub, offset + indent + prefix.len()));
            }
        }
        offset += line.len();
    }
    None
}

/// Paths written out in code rather than imported (`crate::a::B`, `super::c::D`), outside
/// comments and `use` declarations.
fn inline_paths(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let t = code.trim_start();
        if t.starts_with("use ") || t.contains(" use ") || t.starts_with("//") {
            continue;
        }
        for root in ["crate::", "super::"] {
            let mut rest = code;
            while let Some(i) = rest.find(root) {
                let before = rest[..i].chars().last();
                let path: String = rest[i..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    let parts: Vec<String> = path
                        .split("::")
                        .filter(|p| !p.is_empty())
                        .map(String::from)
                        .collect();
                    out.push(parts);
                }
                rest = &rest[i + path.len().max(1)..];
            }
        }
    }
    out
}

/// `a::{b, c::{d, e as f}}` -> `[a, b]`, `[a, c, d]`, `[a, c, e]`.
fn expand(tree: &str) -> Vec<Vec<String>> {
    // Drop renames (`x as y` -> `x`), then whitespace.
    let words: Vec<&str> = tree.split_whitespace().collect();
    let mut kept = String::new();
    let mut i = 0;
    while i < words.len() {
        if words[i] == "as" && i + 1 < words.len() {
            let renamed = words[i + 1];
            kept.push_str(&renamed[renamed.find([',', '}']).unwrap_or(renamed.len())..]);
            i += 2;
        } else {
            kept.push_str(words[i]);
            i += 1;
        }
    }
    let tree = kept;
    let mut out = Vec::new();
    expand_into(&[], &tree, &mut out);
    out
}

fn expand_into(prefix: &[String], tree: &str, out: &mut Vec<Vec<String>>) {
    let mut depth = 0;
    let mut start = 0;
    let mut items = Vec::new();
    for (i, c) in tree.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&tree[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&tree[start..]);
    for item in items.into_iter().filter(|i| !i.is_empty()) {
        match item.find("::{") {
            Some(i) if item.ends_with('}') => {
                let mut p = prefix.to_vec();
                p.extend(item[..i].split("::").map(String::from));
                expand_into(&p, &item[i + 3..item.len() - 1], out);
            }
            _ => {
                let mut p = prefix.to_vec();
                p.extend(
                    item.split("::")
                        .filter(|s| *s != "*" && *s != "self")
                        .map(String::from),
                );
                out.push(p);
            }
        }
    }
}

fn cycles(edges: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Vec<String> {
    let mut found = Vec::new();
    for start in edges.keys() {
        // Depth-first search for a path back to `start`.
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((node, trail)) = stack.pop() {
            for next in edges.get(&node).into_iter().flatten() {
                if next == start {
                    let names: Vec<String> = trail.iter().map(|m| m.join("::")).collect();
                    found.push(format!("{} -> {}", names.join(" -> "), start.join("::")));
                } else if seen.insert(next.clone()) {
                    let mut t = trail.clone();
                    t.push(next.clone());
                    stack.push((next.clone(), t));
                }
            }
        }
    }
    found
}

impl Crate {
    /// Import circles at every module depth, from the top-level modules down to the
    /// deepest (`gpu::kernels::matmul::gather` is depth 4).
    fn circles(&self) -> Vec<String> {
        let deepest = self.modules.keys().map(Vec::len).max().unwrap_or(1);
        (1..=deepest).flat_map(|d| cycles(&self.edges(d))).collect()
    }
}

#[test]
fn the_library_has_no_import_circles() {
    let lib = Crate::load("lib", &["main", "cli"]);
    let found = lib.circles();
    assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
}

#[test]
fn the_cli_has_no_import_circles() {
    let bin = Crate::load("main", &[]);
    let mut cli = bin;
    cli.modules
        .retain(|m, _| m.first().is_none_or(|p| p == "cli"));
    let found = cli.circles();
    assert!(
        found.is_empty(),
        "import circles in the CLI:\n{}",
        found.join("\n")
    );
}

/// Issue 22: the circle check looked at depths 1 and 2 only, so `gpu::engine::plan` <->
/// `gpu::engine::tuning` (depth 3) passed. A circle between two modules three levels down
/// is found now, and so is one four levels down.
#[test]
fn a_circle_at_any_depth_is_found() {
    let module = |path: &str, text: &str| {
        let key: ModPath = path.split("::").map(String::from).collect();
        (key, text.to_string())
    };
    for (a, b) in [
        ("gpu::engine::plan", "gpu::engine::tuning"),
        (
            "gpu::kernels::matmul::gather",
            "gpu::kernels::matmul::variant",
        ),
    ] {
        let mut modules: BTreeMap<ModPath, String> = BTreeMap::new();
        for path in [a, b] {
            let parts: Vec<&str> = path.split("::").collect();
            for i in 1..parts.len() {
                modules.insert(
                    parts[..i].iter().map(|s| s.to_string()).collect(),
                    String::new(),
                );
            }
        }
        modules.extend([
            module(a, &format!("use crate::{b}::X;\n")),
            module(b, &format!("use crate::{a}::Y;\n")),
        ]);
        let found = Crate { modules }.circles();
        assert!(
            found.iter().any(|c| c.contains(a) && c.contains(b)),
            "no circle found between {a} and {b}: {found:?}"
        );
    }
}

#[test]
fn only_gpu_and_the_device_module_import_gpu() {
    let lib = Crate::load("lib", &["main", "cli"]);
    let mut offenders = Vec::new();
    for m in lib.modules.keys() {
        let allowed = m.is_empty() || m[0] == "gpu" || m == &["device".to_string()];
        if allowed {
            continue;
        }
        if lib
            .uses(m, false)
            .iter()
            .any(|p| p.first().is_some_and(|p| p == "gpu"))
        {
            offenders.push(m.join("::"));
        }
    }
    assert!(
        offenders.is_empty(),
        "device-neutral modules import gpu: {offenders:?}"
    );
}

#[test]
fn no_source_file_is_over_1000_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "tests", "benches", "examples"] {
        rust_files(&root.join(dir), &mut files);
    }
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > MAX_LINES).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "files over {MAX_LINES} lines: {long:?}");
}

#[test]
fn the_use_parser_reads_nested_trees() {
    assert_eq!(
        expand("crate::gpu::{self, kernels::{Dispatch, matmul as m}, Gpu}"),
        vec![
            vec!["crate", "gpu"],
            vec!["crate", "gpu", "kernels", "Dispatch"],
            vec!["crate", "gpu", "kernels", "matmul"],
            vec!["crate", "gpu", "Gpu"],
        ]
    );
}
