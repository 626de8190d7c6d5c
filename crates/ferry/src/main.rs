//! The `ferry` command.

use clap::{Parser, Subcommand};
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

    /// Where ferry keeps its state: default file buffers and memory buffers written at a
    /// planned stop (overrides <system> root_dir; default /var/lib/ferry for root, else
    /// ~/.local/state/ferry).
    #[arg(long, value_name = "DIR", env = "FERRY_ROOT_DIR")]
    root_dir: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show a running ferry's buffer flow, forward servers and tuning advice (reads its
    /// monitor_agent endpoint).
    Status {
        /// The monitor_agent endpoint of the running ferry.
        #[arg(long, default_value = "http://127.0.0.1:24220")]
        url: String,
        /// Seconds between the two readings that rates are computed from.
        #[arg(long, default_value_t = 2.0)]
        interval: f64,
    },
    /// Inspect, verify or salvage a file buffer directory offline (no ferry may run on it).
    Buffer {
        #[command(subcommand)]
        command: ferry::buffer_tool::BufferCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Status { url, interval }) = &cli.command {
        let interval = std::time::Duration::from_secs_f64(interval.clamp(0.1, 60.0));
        return match ferry::status::run(url, interval) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ferry status: {e:#}");
                ExitCode::from(1)
            }
        };
    }
    if let Some(Command::Buffer { command }) = &cli.command {
        return ferry::buffer_tool::run(command);
    }
    let options = ferry::pipeline::LoadOptions {
        root_dir: cli.root_dir.clone(),
    };
    let config = match ferry::pipeline::load(cli.config.as_deref(), &options) {
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
        for note in &config.notes {
            eprintln!("ferry: warning: {note}");
        }
        for warning in config.durability_warnings() {
            eprintln!("ferry: warning: {warning}");
        }
        print!("{}", config.summary());
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
    ferry::logging::init(
        level,
        config.log_levels.values().copied(),
        config.system.log_format,
        config.system.log_time_format.as_deref(),
    );
    tracing::info!("using configuration {source}");
    if !config.system.suppress_config_dump {
        tracing::info!("using configuration:\n<ROOT>\n{}</ROOT>", config.dump);
    }
    if let Some(name) = &config.system.process_name {
        ferry::app::set_process_name(name);
    }
    for note in &config.notes {
        tracing::warn!("{note}");
    }
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
    match runtime.block_on(ferry::app::run(config, cli.config.clone(), options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("ferry: {e:#}");
            ExitCode::from(1)
        }
    }
}
