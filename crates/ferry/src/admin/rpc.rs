//! Fluentd's HTTP RPC (`<system> rpc_endpoint 127.0.0.1:24444`): the signals as HTTP calls, for
//! hosts and orchestrators where signals are awkward. Each call answers JSON once the main loop
//! has carried it out (`{"ok":true}`, or `{"ok":false,"message":...}` when a reload is refused):
//!
//! | endpoint | does what |
//! |---|---|
//! | `/api/config.reload`, `/api/config.gracefulReload`, `/api/processes.zeroDowntimeRestart` | SIGHUP: reload, applied as a difference |
//! | `/api/plugins.flushBuffers` | SIGUSR1: queue every staged chunk now |
//! | `/api/processes.killWorkers`, `/api/processes.interruptWorkers` | SIGTERM, SIGINT: a planned stop |
//! | `/api/processes.flushBuffersAndKillWorkers` | SIGUSR1, then SIGTERM |
//!
//! The server is [`crate::http::server`]'s, on a thread of its own (a call waits for the main loop; it
//! must not hold up a scrape).

use crate::http::server::{Handler, Response, response, serve_on_thread};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// What an RPC call asks the main loop to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Reload,
    Flush,
    Stop,
    FlushAndStop,
}

/// The main loop's answer: `Err` with why a reload was refused.
pub type Outcome = Result<(), String>;

/// A call waiting for its answer.
pub type Call = (Command, std::sync::mpsc::Sender<Outcome>);

/// Calls the main loop has not taken yet; more are answered 503.
const PENDING: usize = 8;
/// How long a call waits for the main loop before answering that it is still running.
const WAIT: Duration = Duration::from_secs(4);

fn command(path: &str) -> Option<Command> {
    Some(match path {
        "/api/config.reload"
        | "/api/config.gracefulReload"
        | "/api/processes.zeroDowntimeRestart" => Command::Reload,
        "/api/plugins.flushBuffers" => Command::Flush,
        "/api/processes.killWorkers" | "/api/processes.interruptWorkers" => Command::Stop,
        "/api/processes.flushBuffersAndKillWorkers" => Command::FlushAndStop,
        _ => return None,
    })
}

fn json_response(status: u16, body: serde_json::Value) -> Response {
    response(status, "application/json", body.to_string())
}

/// Binds `endpoint` (`host:port`; errors surface at start-up) and serves the RPC calls on a
/// thread of its own; the calls arrive on the returned receiver.
pub fn start(endpoint: &str) -> anyhow::Result<mpsc::Receiver<Call>> {
    let listener = std::net::TcpListener::bind(endpoint)
        .map_err(|e| anyhow::anyhow!("<system> rpc_endpoint: cannot listen on {endpoint}: {e}"))?;
    listener.set_nonblocking(true)?;
    tracing::info!(
        "rpc endpoint listening on http://{}",
        listener.local_addr()?
    );
    let (tx, rx) = mpsc::channel(PENDING);
    let handler: Handler = Arc::new(move |path, _query| {
        let Some(cmd) = command(path) else {
            return response(404, "text/plain", "not found\n");
        };
        let (reply, answer) = std::sync::mpsc::channel();
        if tx.try_send((cmd, reply)).is_err() {
            return json_response(
                503,
                json!({"ok": false, "message": "busy: earlier calls are still running"}),
            );
        }
        match answer.recv_timeout(WAIT) {
            Ok(Ok(())) => json_response(200, json!({"ok": true})),
            Ok(Err(message)) => json_response(200, json!({"ok": false, "message": message})),
            Err(_) => json_response(
                200,
                json!({"ok": true, "message": "accepted, still running"}),
            ),
        }
    });
    serve_on_thread("ferry-rpc", vec![(listener, handler)])?;
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fluentds_rpc_paths_map_to_the_signals_they_replace() {
        assert_eq!(command("/api/config.reload"), Some(Command::Reload));
        assert_eq!(command("/api/config.gracefulReload"), Some(Command::Reload));
        assert_eq!(command("/api/plugins.flushBuffers"), Some(Command::Flush));
        assert_eq!(command("/api/processes.killWorkers"), Some(Command::Stop));
        assert_eq!(
            command("/api/processes.interruptWorkers"),
            Some(Command::Stop)
        );
        assert_eq!(
            command("/api/processes.flushBuffersAndKillWorkers"),
            Some(Command::FlushAndStop)
        );
        assert_eq!(command("/api/plugins.json"), None);
    }
}
