//! Idle connections kept alive between requests, per origin.
//!
//! A caller takes a connection ([`Pool::take`]: an idle one still open, else a new one), uses
//! it for one exchange and gives it back ([`Pool::put`]) unless it closed. At most `max_idle`
//! connections wait; each user holds one at a time, so the set is bounded by the number of
//! users (an output's flush threads) and `max_idle`.

use super::connection::Connection;
use super::{ClientError, ConnectOptions, Origin};
use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

#[derive(Debug)]
pub struct Pool {
    options: ConnectOptions,
    idle: Mutex<VecDeque<Connection>>,
    max_idle: usize,
}

/// A connection taken from the pool, and whether it had carried requests before.
#[derive(Debug)]
pub struct Taken {
    pub connection: Connection,
    pub reused: bool,
}

impl Pool {
    pub fn new(options: ConnectOptions, max_idle: usize) -> Self {
        Self {
            options,
            idle: Mutex::new(VecDeque::new()),
            max_idle: max_idle.max(1),
        }
    }

    pub fn options(&self) -> &ConnectOptions {
        &self.options
    }

    /// An idle connection to `origin` that is still open, else a new one. Idle connections the
    /// server closed are dropped on the way.
    pub async fn take(&self, origin: &Origin) -> Result<Taken, ClientError> {
        loop {
            let candidate = {
                let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
                let at = idle.iter().position(|c| c.origin() == origin);
                at.and_then(|i| idle.remove(i))
            };
            let Some(mut connection) = candidate else {
                break;
            };
            if connection.is_ready().await {
                return Ok(Taken {
                    connection,
                    reused: true,
                });
            }
        }
        let connection = Connection::open(origin, &self.options).await?;
        Ok(Taken {
            connection,
            reused: false,
        })
    }

    /// Gives a connection back for the next request; a closed one is dropped, and so is the
    /// oldest idle one when `max_idle` wait already.
    pub fn put(&self, connection: Connection) {
        if connection.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() >= self.max_idle {
            idle.pop_front();
        }
        idle.push_back(connection);
    }

    /// Connections waiting.
    pub fn idle(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}
