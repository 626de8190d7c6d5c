//! The `ferry` command.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// A log forwarder and aggregator that speaks Fluentd's Forward protocol.
///
/// Without -c, ferry runs its embedded default configuration: a forward input on
/// 127.0.0.1:24224 that prints every event to stdout as a JSON line.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about, long_about = None)]
struct Cli {
    /// Configuration file in Fluentd's syntax.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Check the configuration, print every error with file:line, and exit.
    #[arg(long)]
    dry_run: bool,

    /// Log level: trace, debug, info, warn, error or fatal (overrides <system> log_level).
    #[arg(long, value_name = "LEVEL", value_parser = clap::builder::PossibleValuesParser::new(ferry::LOG_LEVELS))]
    log_level: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match ferry::pipeline::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("ferry: {e}");
            }
            eprintln!("ferry: configuration has {} error(s)", errors.0.len());
            return ExitCode::from(1);
        }
    };
    let source = cli.config.as_ref().map_or_else(
        || "the embedded default configuration".to_string(),
        |p| p.display().to_string(),
    );
    if cli.dry_run {
        println!(
            "ferry: {source} is valid ({} sources, {} matches, {} labels)",
            config.sources.len(),
            config.routes.root.len()
                + config
                    .routes
                    .labels
                    .iter()
                    .map(|l| l.matches.len())
                    .sum::<usize>(),
            config.routes.labels.len()
        );
        return ExitCode::SUCCESS;
    }
    let level = cli
        .log_level
        .as_deref()
        .or(config.system.log_level.as_deref())
        .unwrap_or("info");
    ferry::logging::init(level);
    tracing::info!("using configuration {source}");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ferry: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(ferry::app::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("ferry: {e:#}");
            ExitCode::from(1)
        }
    }
}
