//! Every metric name ferry exports, in one place.
//!
//! Where Fluentd (with fluent-plugin-prometheus) has a metric, ferry uses its name and labels
//! (`plugin_id`, `type`), so existing dashboards and alerts work unchanged. ferry's own
//! metrics start with `ferry_`.

/// (name, help) of one metric family.
pub type Family = (&'static str, &'static str);

// Outputs (fluent-plugin-prometheus `prometheus_output_monitor`).
pub const OUTPUT_BUFFER_TOTAL_BYTES: Family = (
    "fluentd_output_status_buffer_total_bytes",
    "Bytes held by the output's buffer.",
);
pub const OUTPUT_BUFFER_STAGE_LENGTH: Family = (
    "fluentd_output_status_buffer_stage_length",
    "Chunks still filling.",
);
pub const OUTPUT_BUFFER_STAGE_BYTE_SIZE: Family = (
    "fluentd_output_status_buffer_stage_byte_size",
    "Bytes in chunks still filling.",
);
pub const OUTPUT_BUFFER_QUEUE_LENGTH: Family = (
    "fluentd_output_status_buffer_queue_length",
    "Chunks queued for flushing.",
);
pub const OUTPUT_BUFFER_QUEUE_BYTE_SIZE: Family = (
    "fluentd_output_status_buffer_queue_byte_size",
    "Bytes in queued chunks.",
);
pub const OUTPUT_BUFFER_AVAILABLE_SPACE_RATIO: Family = (
    "fluentd_output_status_buffer_available_space_ratio",
    "Free share of total_limit_size, in percent.",
);
pub const OUTPUT_BUFFER_NEWEST_TIMEKEY: Family = (
    "fluentd_output_status_buffer_newest_timekey",
    "Newest time slice in the buffer.",
);
pub const OUTPUT_BUFFER_OLDEST_TIMEKEY: Family = (
    "fluentd_output_status_buffer_oldest_timekey",
    "Oldest time slice in the buffer.",
);
pub const OUTPUT_RETRY_COUNT: Family = (
    "fluentd_output_status_retry_count",
    "Failed flushes that were retried.",
);
pub const OUTPUT_NUM_ERRORS: Family = ("fluentd_output_status_num_errors", "Failed flushes.");
pub const OUTPUT_EMIT_COUNT: Family = (
    "fluentd_output_status_emit_count",
    "Batches routed to the output.",
);
pub const OUTPUT_EMIT_RECORDS: Family = (
    "fluentd_output_status_emit_records",
    "Events routed to the output.",
);
pub const OUTPUT_WRITE_COUNT: Family = (
    "fluentd_output_status_write_count",
    "Chunks (or batches) delivered.",
);
pub const OUTPUT_WRITE_SECONDARY_COUNT: Family = (
    "fluentd_output_status_write_secondary_count",
    "Chunks delivered to the secondary.",
);
pub const OUTPUT_ROLLBACK_COUNT: Family = (
    "fluentd_output_status_rollback_count",
    "Chunks put back without a retry step.",
);
pub const OUTPUT_SLOW_FLUSH_COUNT: Family = (
    "fluentd_output_status_slow_flush_count",
    "Flushes slower than slow_flush_log_threshold.",
);
pub const OUTPUT_FLUSH_TIME_COUNT: Family = (
    "fluentd_output_status_flush_time_count",
    "Milliseconds spent flushing.",
);
pub const OUTPUT_HEALTHY_NODES: Family = (
    "fluentd_output_healthy_nodes_count",
    "Forward servers taking traffic.",
);
pub const OUTPUT_REGISTERED_NODES: Family = (
    "fluentd_output_registered_nodes_count",
    "Forward servers configured.",
);

// Whole process (fluent-plugin-prometheus `prometheus_monitor`).
pub const STATUS_BUFFER_QUEUE_LENGTH: Family = (
    "fluentd_status_buffer_queue_length",
    "Chunks queued, per output.",
);
pub const STATUS_BUFFER_TOTAL_BYTES: Family = (
    "fluentd_status_buffer_total_bytes",
    "Bytes buffered, per output.",
);
pub const STATUS_RETRY_COUNT: Family = ("fluentd_status_retry_count", "Retries, per output.");

// Inputs.
pub const INPUT_NUM_RECORDS: Family = (
    "fluentd_input_status_num_records_total",
    "Events received by the input.",
);

pub const INPUT_EMIT_RECORDS: Family = (
    "fluentd_input_status_emit_records",
    "Events the input emitted (Fluentd's input emit_records).",
);
pub const INPUT_EMIT_SIZE: Family = (
    "fluentd_input_status_emit_size",
    "Bytes the input emitted (Fluentd's input emit_size).",
);

// Tail: in_tail's own metrics, and fluent-plugin-prometheus `prometheus_tail_monitor`.
pub const TAIL_FILE_POSITION: Family = ("fluentd_tail_file_position", "Committed offset.");
pub const TAIL_FILE_INODE: Family = ("fluentd_tail_file_inode", "Inode of the followed file.");
pub const TAIL_FILES_OPENED: Family = ("fluentd_input_files_opened_total", "Files opened.");
pub const TAIL_FILES_CLOSED: Family = ("fluentd_input_files_closed_total", "Files closed.");
pub const TAIL_FILES_ROTATED: Family = ("fluentd_input_files_rotated_total", "Rotations followed.");
pub const TAIL_FILES_THROTTLED: Family = (
    "fluentd_input_files_throttled_total",
    "Reads held back by read_bytes_limit_per_second.",
);
pub const TAIL_FILES_TRACKED: Family = ("fluentd_input_files_tracked_count", "Files followed now.");
pub const FERRY_TAIL_LONG_LINES: Family = (
    "ferry_tail_long_lines_skipped_total",
    "Lines longer than max_line_size, skipped.",
);
pub const FERRY_TAIL_PARTIALS_JOINED: Family = (
    "ferry_tail_partial_lines_joined_total",
    "Lines a container runtime split into parts (CRI P/F, Docker 16 KiB), joined.",
);
pub const FERRY_TAIL_PARTIALS_CUT: Family = (
    "ferry_tail_partial_lines_cut_total",
    "Joined lines cut at max_line_size; each piece is an event.",
);
pub const FERRY_TAIL_PARTIALS_UNFINISHED: Family = (
    "ferry_tail_partial_lines_unfinished_total",
    "Parts whose end did not come within the timeout or before their file ended, emitted as they were.",
);
pub const FERRY_TAIL_UNMATCHED_LINES: Family = (
    "ferry_tail_unmatched_lines_total",
    "Lines the <parse> section did not match.",
);
pub const FERRY_TAIL_EMIT_RETRIES: Family = (
    "ferry_tail_emit_retries_total",
    "Times the tail input waited for an output to take events (buffer full).",
);
pub const FERRY_TAIL_RECORDS_DROPPED: Family = (
    "ferry_tail_records_dropped_total",
    "Records no output could take (larger than a buffer chunk), dropped and logged.",
);
pub const FERRY_TAIL_BYTES_READ: Family = (
    "ferry_tail_bytes_read_total",
    "Bytes read from followed files.",
);

// ferry's own.
pub const FERRY_BUFFER_RECORDS: Family = ("ferry_buffer_records", "Events held by the buffer.");
pub const FERRY_BUFFER_IN_FLIGHT: Family =
    ("ferry_buffer_in_flight_chunks", "Chunks being flushed now.");
pub const FERRY_QUARANTINED_CHUNKS: Family = (
    "ferry_buffer_quarantined_chunks_total",
    "Chunks moved to the quarantine directory.",
);
pub const FERRY_DROPPED_CHUNKS: Family = (
    "ferry_buffer_dropped_chunks_total",
    "Chunks dropped by overflow_action drop_oldest_chunk.",
);
pub const FERRY_DROPPED_RECORDS: Family = (
    "ferry_events_dropped_total",
    "Events ferry dropped or set aside instead of delivering, by plugin and reason: every loss is counted here.",
);

/// The reasons of [`FERRY_DROPPED_RECORDS`].
pub mod dropped {
    /// `overflow_action drop_oldest_chunk` deleted a chunk to make room.
    pub const DROP_OLDEST_CHUNK: &str = "drop_oldest_chunk";
    /// A chunk that could not be delivered (retries spent, no `<secondary>`, or corrupt) was
    /// moved to the quarantine directory (`ferry buffer salvage` takes it back).
    pub const QUARANTINED: &str = "quarantined";
    /// A memory buffer could neither flush nor be written to disk at a planned stop.
    pub const LOST_AT_STOP: &str = "lost_at_stop";
    /// An event a decoder refused (not `[time, record]`, a record that is not a map).
    pub const INVALID: &str = "invalid";
    /// No `<match>` took the tag.
    pub const UNMATCHED: &str = "unmatched";
    /// A filter reported the event as an error and there is no `@ERROR` label.
    pub const FILTER_ERROR: &str = "filter_error";
    /// A record larger than any buffer chunk.
    pub const TOO_LARGE: &str = "too_large";
    /// A line over `max_line_size` with `skip_long_lines`.
    pub const LONG_LINE: &str = "long_line";
    /// A line the `<parse>` did not match (without `emit_unmatched_lines`).
    pub const UNPARSED_LINE: &str = "unparsed_line";
    /// Lines a copytruncate rotation removed before they were read.
    pub const ROTATION: &str = "rotation";
    /// A network input's message over `message_length_limit`.
    pub const MESSAGE_LENGTH_LIMIT: &str = "message_length_limit";
    /// Events a network input without acknowledgements had read but could not commit (an
    /// output refused them, or ferry stopped while the buffer was full).
    pub const NOT_COMMITTED: &str = "not_committed";
    /// An http output with `error_response_as_unrecoverable false` got an error answer and
    /// deleted the chunk, as Fluentd does.
    pub const ERROR_RESPONSE: &str = "error_response";
}
pub const FERRY_BUFFER_DISK_ERRORS: Family = (
    "ferry_buffer_disk_errors_total",
    "Buffer disk operations that failed.",
);
pub const FERRY_BUFFER_APPEND_ERRORS: Family = (
    "ferry_buffer_append_errors_total",
    "Appends the buffer refused (no ack was sent).",
);
pub const FERRY_BUFFER_TORN_TAILS: Family = (
    "ferry_buffer_torn_tails_total",
    "Torn chunk tails truncated at recovery.",
);
pub const FERRY_OUTPUT_EMIT_REFUSED: Family = (
    "ferry_output_emit_refused_total",
    "Batches the output did not commit.",
);
pub const FERRY_FILTER_CONCAT_NOT_APPLIED: Family = (
    "ferry_filter_concat_not_applied_total",
    "Events a concat filter passed on unjoined: they did not come from a tail input whose route starts with it.",
);
pub const FERRY_TAIL_MULTILINE_JOINED: Family = (
    "ferry_tail_concat_events_total",
    "Events joined from several lines by the route's concat filter, run in the tail input.",
);
pub const FERRY_TAIL_MULTILINE_TIMEOUTS: Family = (
    "ferry_tail_concat_timeouts_total",
    "Joined events given out because their end did not come within flush_interval.",
);
pub const FERRY_TAIL_MULTILINE_CUT: Family = (
    "ferry_tail_concat_cut_total",
    "Joined events cut at max_line_size.",
);
pub const FERRY_ROUTER_UNMATCHED: Family = (
    "ferry_router_unmatched_records_total",
    "Events no <match> took.",
);
pub const FERRY_FORWARD_CONNECTIONS: Family = (
    "ferry_forward_input_connections",
    "Open connections of a forward input.",
);
pub const FERRY_NETWORK_INPUT_CONNECTIONS: Family = (
    "ferry_network_input_connections",
    "Open connections of a tcp, syslog or http input.",
);
pub const FERRY_NETWORK_INPUT_REFUSED: Family = (
    "ferry_network_input_refused_total",
    "Connections a tcp, syslog or http input refused or closed early, by reason.",
);
pub const FERRY_HTTP_INPUT_REQUESTS: Family = (
    "ferry_http_input_requests_total",
    "Requests an http input answered, by status code.",
);
pub const FERRY_HTTP_INPUT_REQUEST_BYTES: Family = (
    "ferry_http_input_request_bytes_total",
    "Body bytes an http input read (as sent, before decompression).",
);
pub const FERRY_SCRIBE_INPUT_CALLS: Family = (
    "ferry_scribe_input_calls_total",
    "Calls a scribe input answered: Log with OK or TRY_LATER, fb303 status calls, unknown methods.",
);
pub const FERRY_SCRIBE_OUTPUT_CALLS: Family = (
    "ferry_scribe_output_calls_total",
    "Log calls a scribe output made, by answer: ok, try_later, failed (connection, timeout, exception).",
);
pub const FERRY_SCRIBE_OUTPUT_MESSAGES: Family = (
    "ferry_scribe_output_messages_total",
    "Messages a scribe output had answered OK.",
);
pub const FERRY_SCRIBE_OUTPUT_BYTES: Family = (
    "ferry_scribe_output_bytes_total",
    "Message bytes a scribe output had answered OK.",
);
pub const FERRY_SCRIBE_OUTPUT_CONNECTIONS: Family = (
    "ferry_scribe_output_connections_total",
    "Connections a scribe output opened.",
);
pub const FERRY_KAFKA_CONSUMER_MESSAGES: Family = (
    "ferry_kafka_consumer_messages_total",
    "Messages a kafka_group input read.",
);
pub const FERRY_KAFKA_CONSUMER_PAUSES: Family = (
    "ferry_kafka_consumer_pauses_total",
    "Times a kafka_group input paused its partitions because a buffer was full.",
);
pub const FERRY_KAFKA_CONSUMER_REBALANCES: Family = (
    "ferry_kafka_consumer_rebalances_total",
    "Rebalances (assignments and revocations) a kafka_group input took part in.",
);
pub const FERRY_KAFKA_CONSUMER_COMMITS: Family = (
    "ferry_kafka_consumer_commits_total",
    "Offset commits of a kafka_group input (each after the events before them were committed to the buffer).",
);
pub const FERRY_KAFKA_CONSUMER_LAG: Family = (
    "ferry_kafka_consumer_lag",
    "Messages of a partition not read yet by a kafka_group input, from librdkafka's statistics.",
);
pub const FERRY_KAFKA_CONSUMER_COMMITTED_OFFSET: Family = (
    "ferry_kafka_consumer_committed_offset",
    "The offset a kafka_group input last committed for a partition.",
);
pub const FERRY_UDP_INPUT_DATAGRAMS: Family = (
    "ferry_udp_input_datagrams_total",
    "Datagrams a udp input received.",
);
pub const FERRY_UDP_INPUT_KERNEL_DROPS: Family = (
    "ferry_udp_input_kernel_drops_total",
    "Datagrams the kernel dropped for a udp input's socket (its receive buffer was full), from /proc/net/udp.",
);
pub const FERRY_INPUT_HELD_SECONDS: Family = (
    "ferry_input_held_seconds_total",
    "Time an input held its sender (stopped reading) because an output's buffer was full.",
);
pub const FERRY_FORWARD_ACKS: Family = (
    "ferry_forward_input_acks_total",
    "Acks sent by a forward input.",
);
pub const FERRY_FORWARD_REQUESTS: Family = (
    "ferry_forward_input_requests_total",
    "Requests received by a forward input.",
);
pub const FERRY_FORWARD_REFUSED: Family = (
    "ferry_forward_input_refused_total",
    "Requests or connections a forward input refused, by reason.",
);
pub const FERRY_FORWARD_SERVER_UP: Family = (
    "ferry_forward_server_available",
    "1 when a forward server takes traffic.",
);
pub const FERRY_FORWARD_SERVER_PHI: Family = (
    "ferry_forward_server_phi",
    "Phi of the server's failure detector.",
);
pub const FERRY_FORWARD_SERVER_RTT: Family = (
    "ferry_forward_server_heartbeat_rtt_seconds",
    "Last heartbeat round trip.",
);
pub const FERRY_FORWARD_ACKS_PENDING: Family = (
    "ferry_forward_output_acks_pending",
    "Chunks sent and waiting for their ack.",
);
pub const FERRY_FORWARD_DUPLICATES: Family = (
    "ferry_forward_output_resent_chunks_total",
    "Chunks sent again after an ack was lost (possible duplicates downstream).",
);
pub const FERRY_FORWARD_RESENT_AFTER_RESTART: Family = (
    "ferry_forward_output_resent_after_restart_total",
    "Requests a crash interrupted (written before it, never acknowledged) sent again after the restart.",
);
pub const FERRY_FORWARD_RECORDS_RESENT_AFTER_RESTART: Family = (
    "ferry_forward_output_resent_after_restart_records_total",
    "Records of those requests: the most events a crash can have duplicated downstream.",
);
pub const FERRY_FILE_CHUNKS_ALREADY_WRITTEN: Family = (
    "ferry_file_output_chunks_already_written_total",
    "Chunks a crash interrupted after they were archived whole: not written again.",
);
pub const FERRY_FILE_PARTS_ALREADY_WRITTEN: Family = (
    "ferry_file_output_parts_already_written_total",
    "Files of a chunk published before a failure or crash: not written again.",
);
pub const FERRY_FILE_APPENDS_UNDONE: Family = (
    "ferry_file_output_partial_writes_undone_total",
    "Appends a crash interrupted, cut back at start before their chunk is written again.",
);
pub const FERRY_FILE_BYTES_UNDONE: Family = (
    "ferry_file_output_partial_write_bytes_undone_total",
    "Bytes of those appends cut back.",
);
pub const FERRY_FILE_SYNCS: Family = (
    "ferry_file_output_syncs_total",
    "Files and directories synced to make archived chunks durable (a group of chunks shares its syncs).",
);
pub const FERRY_TAIL_INOTIFY_FALLBACKS: Family = (
    "ferry_tail_polling_fallback_total",
    "Times inotify could not be used (no instance, no watch, queue overflow) and polling took over.",
);
pub const FERRY_FORWARD_INVALID_EVENTS: Family = (
    "ferry_forward_input_invalid_events_total",
    "Events a forward input skipped (bad time type, record not a map).",
);
pub const FERRY_FORWARD_HANDSHAKE_FAILURES: Family = (
    "ferry_forward_input_handshake_failures_total",
    "Handshakes a forward input refused, by reason.",
);
pub const FERRY_FORWARD_HEARTBEATS: Family = (
    "ferry_forward_input_heartbeats_total",
    "UDP heartbeats a forward input answered.",
);
pub const FERRY_FORWARD_OUTPUT_REQUESTS: Family = (
    "ferry_forward_output_requests_total",
    "Requests a forward output wrote, per server.",
);
pub const FERRY_FORWARD_OUTPUT_BYTES: Family = (
    "ferry_forward_output_bytes_total",
    "Bytes a forward output wrote, per server.",
);
pub const FERRY_FORWARD_OUTPUT_ERRORS: Family = (
    "ferry_forward_output_server_errors_total",
    "Connection, TLS, handshake and ack failures, per server.",
);
pub const FERRY_FORWARD_OUTPUT_ACKS_LOST: Family = (
    "ferry_forward_output_acks_lost_total",
    "Requests whose ack did not come (timeout or connection lost).",
);
pub const FERRY_FORWARD_OUTPUT_DETACHES: Family = (
    "ferry_forward_output_detach_total",
    "Times a server was taken out of the rotation.",
);
pub const FERRY_FORWARD_OUTPUT_RECOVERS: Family = (
    "ferry_forward_output_recover_total",
    "Times a server came back into the rotation.",
);
pub const FERRY_FORWARD_OUTPUT_DNS_FAILURES: Family = (
    "ferry_forward_output_dns_failures_total",
    "Name lookups that failed or timed out (the last good address is used).",
);
pub const FERRY_FORWARD_OUTPUT_HEARTBEAT_ERRORS: Family = (
    "ferry_forward_output_heartbeat_errors_total",
    "Heartbeat ticks that failed unexpectedly (the timer keeps running).",
);
pub const FERRY_FORWARD_OUTPUT_DISCOVERY_ERRORS: Family = (
    "ferry_forward_output_discovery_errors_total",
    "Server lists a <service_discovery> could not use: unreadable or bad file, failed SRV lookup (the last good list stays).",
);
pub const FERRY_FORWARD_OUTPUT_SERVER_CHANGES: Family = (
    "ferry_forward_output_server_changes_total",
    "Servers that joined or left a forward output through service discovery.",
);
pub const FERRY_KAFKA_PRODUCED: Family = (
    "ferry_kafka_produced_total",
    "Messages handed to the producer, per topic.",
);
pub const FERRY_KAFKA_IN_FLIGHT: Family = (
    "ferry_kafka_in_flight_messages",
    "Messages waiting for the broker's acknowledgement, per topic.",
);
pub const FERRY_KAFKA_RETRIES: Family = (
    "ferry_kafka_retries_total",
    "Messages produced again after a retryable error, per topic.",
);
pub const FERRY_KAFKA_DELIVERED: Family = (
    "ferry_kafka_delivered_total",
    "Messages the broker acknowledged, per topic and partition.",
);
pub const FERRY_KAFKA_DELIVERED_BYTES: Family = (
    "ferry_kafka_delivered_bytes_total",
    "Payload bytes the broker acknowledged, per topic and partition.",
);
pub const FERRY_KAFKA_ERRORS: Family = (
    "ferry_kafka_delivery_errors_total",
    "Deliveries that failed, per topic and partition.",
);
pub const FERRY_KAFKA_QUEUE_FULL: Family = (
    "ferry_kafka_queue_full_waits_total",
    "Times the producer queue was full and the output waited.",
);
pub const FERRY_KAFKA_PRODUCER_RESTARTS: Family = (
    "ferry_kafka_producer_restarts_total",
    "Producers rebuilt after a fatal error.",
);
pub const FERRY_HTTP_OUTPUT_REQUESTS: Family = (
    "ferry_http_output_requests_total",
    "Requests an http output sent (one per chunk and attempt).",
);
pub const FERRY_HTTP_OUTPUT_RESPONSES: Family = (
    "ferry_http_output_responses_total",
    "Answers an http output received, by status class (2xx, 3xx, 4xx, 5xx).",
);
pub const FERRY_HTTP_OUTPUT_BYTES: Family = (
    "ferry_http_output_bytes_total",
    "Request body bytes an http output sent (after compression).",
);
pub const FERRY_HTTP_OUTPUT_RECORDS: Family = (
    "ferry_http_output_records_total",
    "Events in requests the endpoint answered with a success.",
);
pub const FERRY_HTTP_OUTPUT_RETRYABLE_ERRORS: Family = (
    "ferry_http_output_retryable_errors_total",
    "Requests that failed and will be retried: retryable_response_codes, connection failures, timeouts.",
);
pub const FERRY_HTTP_OUTPUT_UNRECOVERABLE_ERRORS: Family = (
    "ferry_http_output_unrecoverable_errors_total",
    "Requests answered with a status that is neither a success nor retryable (the chunk goes to <secondary> or quarantine).",
);
pub const FERRY_HTTP_OUTPUT_CONNECTIONS: Family = (
    "ferry_http_output_connections_total",
    "Connections an http output opened (kept alive and reused between chunks).",
);
pub const FERRY_TASKS: Family = ("ferry_tasks", "Running tasks.");
pub const FERRY_START_TIME: Family = (
    "ferry_start_time_seconds",
    "Unix time when this ferry process started.",
);
