use std::process::ExitCode;

use clap::Parser;
use lectic_nix_sandbox::agent;
use lectic_nix_sandbox::cli::{Cli, one_line};
use lectic_nix_sandbox::config::Config;
use lectic_nix_sandbox::manage;
use lectic_nix_sandbox::proxy;

/// The sandbox's own failures exit 125, as Podman's do.
const SANDBOX_FAILURE: u8 = 125;

fn main() -> ExitCode {
    // The binary's other roles, each only as argv[1].
    let internal: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    match internal.first().and_then(|a| a.to_str()) {
        // Inside a warm container, as its main process (see agent/).
        Some(agent::ARG) => {
            return match agent::server::serve(internal.iter().any(|a| a == agent::FORWARD)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&format!("agent: {e}")),
            };
        }
        // Inside a container without the agent, for --allow-host.
        Some(proxy::forward::ARG) => return proxy::forward::wrap(&internal[1..]),
        // On the host, a warm container's proxy.
        Some(proxy::daemon::ARG) => {
            return match internal.get(1) {
                Some(dir) => match proxy::daemon::serve(std::path::Path::new(dir)) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => fail(&format!("proxy: {e}")),
                },
                None => fail("proxy: no state directory given"),
            };
        }
        _ => {}
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => return fail(&one_line(&e)),
    };
    // Generated from the command line's definition alone: no configuration.
    if let Some(shell) = cli.completions {
        print!("{}", manage::generate::completions(shell));
        return ExitCode::SUCCESS;
    }
    if cli.man {
        print!("{}", manage::generate::man());
        return ExitCode::SUCCESS;
    }
    lectic_nix_sandbox::set_verbose(cli.verbose);
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let outcome = Config::from_cli(cli, &args).and_then(|cfg| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| lectic_nix_sandbox::error::Error::os("cannot start the runtime", e))?;
        runtime.block_on(lectic_nix_sandbox::call::run(cfg))
    });
    match outcome {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(SANDBOX_FAILURE)),
        Err(e) => fail(&e.to_string()),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("lectic-nix-sandbox: {message}");
    ExitCode::from(SANDBOX_FAILURE)
}
