//! The `meshql` command line: see [`cli`] for its commands.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use meshql::ErrorKind;

/// mimalloc returns freed memory to the system promptly; the counter lets the server refuse new
/// queries while the process is above its memory budget.
#[global_allocator]
static ALLOCATOR: meshql::engine::allocator::CountingAllocator<mimalloc::MiMalloc> =
    meshql::engine::allocator::CountingAllocator(mimalloc::MiMalloc);

/// Warnings and errors, without delta-kernel's report of every not-yet-created table.
const DEFAULT_LOG_FILTER: &str = "warn,buoyant_kernel=off";

fn main() -> ExitCode {
    ALLOCATOR.enable();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER)),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = cli::Cli::parse();
    #[cfg(unix)]
    if !cli.serves() {
        // `meshql lineage | head` ends quietly: commands other than `serve` die on SIGPIPE.
        // SAFETY: restoring the default disposition of a signal before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Query execution recurses over expressions; give workers room beyond the 2 MiB default.
        .thread_stack_size(16 * 1024 * 1024)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return exit(ErrorKind::Internal);
        }
    };
    match runtime.block_on(cli::dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            exit(e.kind())
        }
    }
}

fn exit(kind: ErrorKind) -> ExitCode {
    ExitCode::from(kind.exit_code() as u8)
}
