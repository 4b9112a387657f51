//! results/README.md documents every column of summary.csv and cells.csv.

use acceptbench::hostjoin::output::HostRow;
use acceptbench::report::cells::CellRow;
use acceptbench::report::row::SummaryRow;
use acceptbench::report::stall::{Bin, StallRow};

fn columns<T: serde::Serialize>(row: &T) -> Vec<String> {
    match serde_json::to_value(row).unwrap() {
        serde_json::Value::Object(map) => map.keys().cloned().collect(),
        other => panic!("not a struct: {other:?}"),
    }
}

#[test]
fn every_column_is_documented() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/results/README.md")).unwrap();
    let summary = &doc[doc.find("## summary.csv columns").unwrap()..];
    let cells = &doc[doc.find("## cells.csv columns").unwrap()..];
    let stall =
        &doc[doc.find("## stall.csv columns").unwrap()..doc.find("## stall timelines").unwrap()];
    let timeline =
        &doc[doc.find("## stall timelines").unwrap()..doc.find("## cells.csv columns").unwrap()];
    for c in columns(&StallRow::default()) {
        assert!(
            stall.contains(&format!("| `{c}` |")),
            "stall.csv column {c} undocumented"
        );
    }
    for c in columns(&Bin::default()) {
        assert!(
            timeline.contains(&format!("| `{c}` |")),
            "stall timeline column {c} undocumented"
        );
    }
    let hosts =
        &doc[doc.find("## Joined runs").unwrap()..doc.find("## summary.csv columns").unwrap()];
    for c in columns(&HostRow::default()) {
        assert!(
            hosts.contains(&format!("| `{c}` |")),
            "hosts.csv column {c} undocumented"
        );
    }
    for c in columns(&SummaryRow::default()) {
        assert!(
            summary.contains(&format!("| `{c}` |")),
            "summary.csv column {c} undocumented"
        );
    }
    for c in columns(&CellRow::default()) {
        assert!(
            cells.contains(&format!("| `{c}` |")),
            "cells.csv column {c} undocumented"
        );
    }
}
