//! acceptbench's entry point: parse, validate, run, report the error chain.

use std::process::ExitCode;

use acceptbench::config::Command;

fn main() -> ExitCode {
    // args_os: std::env::args panics on an argument that is not UTF-8. The recorded
    // command line shows such bytes as U+FFFD; clap itself refuses them where a text
    // value is expected, with a message.
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let (cli, given) = match acceptbench::cli::parse(std::env::args_os()) {
        Ok(parsed) => parsed,
        // Help and version exit 0; a command-line error prints clap's message, exit 2.
        Err(e) => e.exit(),
    };
    let command = match Command::from_cli(cli, &argv, &given) {
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
        // The reader of stdout went away (`| head -1`): what it wanted it got.
        Err(e) if acceptbench::stdout::is_broken_pipe(&e) => ExitCode::SUCCESS,
        // An external server whose command cannot work: the user's to fix.
        Err(e) if e.is::<acceptbench::sweep::external::PreflightError>() => {
            eprintln!("acceptbench: error: {e:#}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("acceptbench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
