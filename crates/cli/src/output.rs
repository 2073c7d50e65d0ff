//! Writing results to stdout: aligned text tables for people, pretty JSON for programs. A closed
//! pipe (`caasctl ... | head`) ends output quietly.

use std::io::Write;

use unicode_width::UnicodeWidthStr;

/// A text table with a header row.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Creates a table with these column titles.
    pub fn new(header: Vec<String>) -> Table {
        Table { header, rows: Vec::new() }
    }

    /// Appends a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Renders the table with columns padded to their widest cell, counting CJK characters as two
    /// columns.
    pub fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths = vec![0usize; columns];
        for row in std::iter::once(&self.header).chain(self.rows.iter()) {
            for (index, cell) in row.iter().enumerate().take(columns) {
                widths[index] = widths[index].max(cell.width());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(self.rows.iter()) {
            let mut line = String::new();
            for (index, cell) in row.iter().enumerate().take(columns) {
                line.push_str(cell);
                if index + 1 < columns {
                    line.push_str(&" ".repeat(widths[index] - cell.width() + 2));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Writes text to stdout, ignoring a closed pipe.
pub fn print_text(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// Writes a value as pretty JSON with a trailing newline to stdout, ignoring a closed pipe.
pub fn print_json<T: serde::Serialize>(value: &T) {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    text.push('\n');
    print_text(&text);
}

/// Formats a byte count with binary units.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_wide_characters() {
        let mut table = Table::new(vec!["端点".into(), "x".into()]);
        table.row(vec!["a".into(), "b".into()]);
        assert_eq!(table.render(), "端点  x\na     b\n");
    }

    #[test]
    fn human_bytes_units() {
        assert_eq!(human_bytes(10), "10 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(137_900_000), "131.5 MiB");
    }
}
