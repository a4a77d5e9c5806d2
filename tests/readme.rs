//! The README's notebook cells are the crate docs' example, line for line, so that the doc test
//! that compiles the one keeps the other true.

#[test]
fn the_readme_cell_is_the_crate_docs_example() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    // The cells, in order, as one example (the first loads the crate).
    let cells: Vec<&str> = readme
        .split("```rust\n")
        .skip(1)
        .take(2)
        .filter_map(|rest| rest.split("```").next())
        .collect();
    assert_eq!(
        cells.len(),
        2,
        "README.md's first two ```rust blocks are its cells"
    );
    let cell: Vec<&str> = cells
        .iter()
        .flat_map(|c| c.lines())
        .filter(|l| !l.starts_with(":dep") && !l.is_empty())
        .collect();
    assert!(cell.len() > 5 && cell.iter().any(|l| l.contains("train_stage2")));
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    let docs: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .filter(|l| !l.starts_with("# ") && !l.is_empty())
        .collect();
    let at = docs
        .iter()
        .position(|l| *l == cell[0])
        .unwrap_or_else(|| panic!("src/lib.rs's docs lack the cell's first line {:?}", cell[0]));
    assert_eq!(
        docs[at..at + cell.len()],
        cell[..],
        "README.md's cell and src/lib.rs's example"
    );
}
