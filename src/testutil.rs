//! Helpers for the unit tests.

/// The rows of a table written as text: a row a line, its cells apart by
/// spaces (so a cell holds none), `-` for a cell with no value. Blank lines
/// and lines starting with `//` are skipped. Every row must have `width` cells.
pub fn rows(table: &str, width: usize) -> Vec<Vec<&str>> {
    let rows = cells(table);
    for row in &rows {
        assert_eq!(row.len(), width, "a row of {width} cells: {row:?}");
    }
    assert!(!rows.is_empty(), "a table with rows");
    rows
}

/// A cell's value: `None` for `-`.
pub fn opt(cell: &str) -> Option<&str> {
    (cell != "-").then_some(cell)
}

/// The rows of a table as [`rows`] reads them, of any number of cells.
pub fn cells(table: &str) -> Vec<Vec<&str>> {
    table
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .map(|l| l.split_whitespace().collect())
        .collect()
}
