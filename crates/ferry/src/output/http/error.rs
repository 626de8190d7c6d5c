//! Why a chunk did not reach the endpoint, and whether it may later.

use crate::http::client::ClientError;

/// Why an http output did not deliver a chunk. Each names the request (method and URL).
#[derive(Debug, thiserror::Error)]
pub enum HttpOutputError {
    /// No connection, a failed TLS handshake, a timeout, a connection lost mid-request.
    #[error("{request}: {source}")]
    Request {
        request: String,
        #[source]
        source: ClientError,
    },
    /// An answer in `retryable_response_codes`.
    #[error("{request} answered {status}: {body}")]
    RetryableResponse {
        request: String,
        status: http::StatusCode,
        body: String,
    },
    /// A success that came before the whole body was sent: it cannot speak for the events
    /// not sent, so the chunk is sent again.
    #[error("{request} answered {status} before the whole body was sent")]
    EarlyAnswer {
        request: String,
        status: http::StatusCode,
    },
    /// Any other answer (`error_response_as_unrecoverable true`): sending the chunk again
    /// would get the same answer.
    #[error("{request} answered {status}: {body}")]
    ErrorResponse {
        request: String,
        status: http::StatusCode,
        body: String,
    },
    /// The chunk's placeholders make a request that cannot be sent (a URL that does not parse,
    /// a host not in `allowed_hosts`, a header value with a line break).
    #[error("chunk {chunk}: {reason}")]
    Unsendable { chunk: String, reason: String },
}

impl HttpOutputError {
    /// Whether the same chunk may be delivered later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Request { .. } | Self::RetryableResponse { .. } | Self::EarlyAnswer { .. }
        )
    }

    /// A short class name for log lines (`error_class=...`), Fluentd's where it has one.
    pub fn class(&self) -> &'static str {
        match self {
            Self::Request { .. } => "ConnectionError",
            Self::RetryableResponse { .. } => "Fluent::Plugin::HTTPOutput::RetryableResponse",
            Self::EarlyAnswer { .. } => "EarlyAnswer",
            Self::ErrorResponse { .. } | Self::Unsendable { .. } => "Fluent::UnrecoverableError",
        }
    }
}
