//! loadgen's binary: everything happens in `loadgen::cli_main`, shared with `acceptbench loadgen`.

fn main() -> std::process::ExitCode {
    loadgen::cli_main(std::env::args_os())
}
