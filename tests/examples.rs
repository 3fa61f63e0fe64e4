//! Issue 14, item 4: the examples are part of the tested library surface. Each example
//! that can run without a GPU or data files is compiled in here as a module so its own
//! tests run with `cargo test`; the crate docs must name every example.

#[allow(dead_code)]
#[path = "../examples/custom_dataset.rs"]
mod custom_dataset;

/// The crate docs (`src/lib.rs`) link every file in `examples/`.
#[test]
fn crate_docs_link_every_example() {
    let docs = include_str!("../src/lib.rs");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(
        names.contains(&"custom_dataset.rs".to_string()),
        "{names:?}"
    );
    for name in names {
        let link = format!("examples/{name}");
        assert!(docs.contains(&link), "src/lib.rs does not link {link}");
    }
}
