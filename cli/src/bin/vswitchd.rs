//! `vswitchd`: the vswitch daemon. Starts the datapath from the saved state and serves the REST
//! API until SIGTERM or SIGINT.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mgmt_api::DaemonConfig;

/// The vswitch daemon.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Configuration file (TOML); without it the embedded default is used.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Directory holding the persistent state (bridges, ports, flows).
    #[arg(long, default_value = "/var/lib/vswitch")]
    state_dir: PathBuf,
    /// Directory of the sockets of `vhostuser` ports (overrides `run_dir` of the configuration).
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Print the embedded default configuration and exit.
    #[arg(long)]
    print_default_config: bool,
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.print_default_config {
        print!("{}", mgmt_api::config::DEFAULT_CONFIG);
        return ExitCode::SUCCESS;
    }
    // The log goes to standard error (standard output is for what was asked, as
    // --print-default-config), filtered by RUST_LOG (default `info`), in colour only on a
    // terminal.
    let stderr = std::io::stderr();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(stderr.is_terminal())
        .with_writer(std::io::stderr)
        .init();
    // Errors of the command line and the configuration are usage errors (exit status 2), for
    // the person starting the daemon: plain lines on standard error. Later ones are logged.
    let cfg = match &args.config {
        Some(p) => DaemonConfig::load(p),
        None => Ok(DaemonConfig::default_config()),
    };
    let mut cfg = match cfg {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vswitchd: configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(dir) = args.run_dir {
        // Sockets are handed to VMs by path, so a relative flag is resolved once, here.
        cfg.datapath.run_dir = match std::path::absolute(&dir) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("vswitchd: --run-dir {}: {e}", dir.display());
                return ExitCode::from(2);
            }
        };
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(
                errno = e.raw_os_error(),
                "cannot start the async runtime: {e}"
            );
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(mgmt_api::serve(cfg, &args.state_dir, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("stopped: {e}");
            ExitCode::FAILURE
        }
    }
}
