//! HTTP/1.1 for every part of ferry that speaks it, on hyper: the http input, the http output
//! and the admin endpoints (metrics, monitor API, state dump, RPC).
//!
//! | module | job |
//! |---|---|
//! | [`server`] | serving one connection with ferry's limits (head size and time, keep-alive), responses, the admin thread |
//! | [`form`] | `k=v&...` query strings and form bodies, unescaped |
//! | [`client`] | requests to a server: one connection kept alive, plain or TLS, with connect and read timeouts |
//!
//! Sockets, accept loops, TLS handshakes and `<client>` ACLs of an HTTP *input* are
//! [`crate::input::net`]'s, as for every network input: hyper is handed the connection after
//! them.

pub mod client;
pub mod form;
pub mod server;

pub use server::{Body, Response, response};
