//! acceptbench's entry point: parse, validate, run, report the error chain.

use std::process::ExitCode;

use clap::Parser;

use acceptbench::cli::Cli;
use acceptbench::config::Command;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let cli = Cli::parse();
    let command = match Command::from_cli(cli, &argv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("acceptbench: error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Command::Sweep(cfg) = &command {
        if let Some(note) = cfg.cpu_note() {
            eprintln!("acceptbench: note: {note}");
        }
    }
    match acceptbench::app::run(command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("acceptbench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
