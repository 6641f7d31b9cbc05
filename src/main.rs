use std::process::ExitCode;

use clap::Parser;
use lectic_nix_sandbox::cli::Cli;
use lectic_nix_sandbox::config::Config;

/// The sandbox's own failures exit 125, as Podman's do.
const SANDBOX_FAILURE: u8 = 125;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => return fail(&usage_error(&e)),
    };
    lectic_nix_sandbox::set_verbose(cli.verbose);
    let outcome = Config::from_cli(cli).and_then(|cfg| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| lectic_nix_sandbox::error::Error::os("cannot start the runtime", e))?;
        runtime.block_on(lectic_nix_sandbox::run(cfg))
    });
    match outcome {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(SANDBOX_FAILURE)),
        Err(e) => fail(&e.to_string()),
    }
}

/// clap's message (without its usage block and tips) as one line, with the fix.
fn usage_error(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let message: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:"))
        .filter(|l| {
            !l.is_empty() && !l.starts_with("tip:") && !l.starts_with("For more information")
        })
        .collect();
    let message = message.join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    format!("{message}; see `lectic-nix-sandbox --help`")
}

fn fail(message: &str) -> ExitCode {
    eprintln!("lectic-nix-sandbox: {message}");
    ExitCode::from(SANDBOX_FAILURE)
}
