//! `sifa-agent`: the office agent's own binary (the same commands as `sifa agent ...`).

fn main() -> std::process::ExitCode {
    sifa_agent::cli::main()
}
