//! Markdown tables: one writer for every report (the run README, the join README,
//! `compare --format markdown`), so their layout and escaping agree.

/// How a column's cells align.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// A Markdown table being built.
#[derive(Debug, Clone)]
pub struct Table {
    head: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these columns.
    pub fn new(columns: &[(&str, Align)]) -> Table {
        Table {
            head: columns.iter().map(|(n, a)| (n.to_string(), *a)).collect(),
            rows: Vec::new(),
        }
    }

    /// A table whose column names are made at run time.
    pub fn with_head(head: Vec<(String, Align)>) -> Table {
        Table {
            head,
            rows: Vec::new(),
        }
    }

    /// Adds a row: one cell per column (missing cells are left empty, extra ones dropped).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// True when no row was added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as Markdown, a line per row, `|` inside cells escaped.
    pub fn render(&self) -> String {
        let line = |cells: &mut dyn Iterator<Item = String>| {
            let cells: Vec<String> = cells.collect();
            format!("| {} |\n", cells.join(" | "))
        };
        let mut s = line(&mut self.head.iter().map(|(n, _)| escape(n)));
        let rule: Vec<&str> = self
            .head
            .iter()
            .map(|(_, a)| match a {
                Align::Left => "---",
                Align::Right => "---:",
            })
            .collect();
        s.push_str(&format!("|{}|\n", rule.join("|")));
        for r in &self.rows {
            let n = self.head.len();
            s.push_str(&line(
                &mut (0..n).map(|i| r.get(i).map_or(String::new(), |c| escape(c))),
            ));
        }
        s
    }
}

fn escape(cell: &str) -> String {
    cell.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_aligned_escaped_rows() {
        let mut t = Table::new(&[("engine", Align::Left), ("accepts/s", Align::Right)]);
        assert!(t.is_empty());
        t.row(vec!["std".into(), "100".into()]);
        t.row(vec!["a|b".into()]);
        assert_eq!(
            t.render(),
            "| engine | accepts/s |\n|---|---:|\n| std | 100 |\n| a\\|b |  |\n"
        );
    }
}
