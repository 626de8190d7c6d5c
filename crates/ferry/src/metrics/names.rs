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

// Tail (fluent-plugin-prometheus `prometheus_tail_monitor`).
pub const TAIL_FILE_POSITION: Family = ("fluentd_tail_file_position", "Committed offset.");
pub const TAIL_FILE_INODE: Family = ("fluentd_tail_file_inode", "Inode of the followed file.");
pub const TAIL_FILE_OPENED: Family = ("fluentd_tail_file_opened", "Files opened.");
pub const TAIL_FILE_CLOSED: Family = ("fluentd_tail_file_closed", "Files closed.");
pub const TAIL_FILE_ROTATED: Family = ("fluentd_tail_file_rotated", "Rotations followed.");
pub const TAIL_FILE_THROTTLED: Family = (
    "fluentd_tail_file_throttled",
    "Reads held back by read_bytes_limit_per_second.",
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
pub const FERRY_DROPPED_RECORDS: Family =
    ("ferry_events_dropped_total", "Events dropped, by reason.");
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
pub const FERRY_ROUTER_UNMATCHED: Family = (
    "ferry_router_unmatched_records_total",
    "Events no <match> took.",
);
pub const FERRY_FORWARD_CONNECTIONS: Family = (
    "ferry_forward_input_connections",
    "Open connections of a forward input.",
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
pub const FERRY_TAIL_INOTIFY_FALLBACKS: Family = (
    "ferry_tail_inotify_fallbacks_total",
    "Files watched by polling because inotify ran out.",
);
pub const FERRY_TASKS: Family = ("ferry_tasks", "Running tasks.");
pub const FERRY_START_TIME: Family = (
    "ferry_start_time_seconds",
    "Unix time when this ferry process started.",
);
