//! The ferry configurations of the scenarios (Fluentd syntax).

use std::path::Path;

/// A forward input on 127.0.0.1:`port`.
pub fn forward_source(port: u16) -> String {
    format!("<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n")
}

/// A tail input reading `path` (JSON lines) from its head.
pub fn tail_source(path: &Path, pos: &Path) -> String {
    format!(
        "<source>\n  @type tail\n  path {}\n  pos_file {}\n  tag bench.tail\n  read_from_head true\n  refresh_interval 1s\n  <parse>\n    @type json\n  </parse>\n</source>\n",
        path.display(),
        pos.display()
    )
}

/// A `<buffer>` section: memory, or file under `path`.
pub fn buffer(keys: &str, file: Option<&Path>, extra: &str) -> String {
    let kind = match file {
        Some(p) => format!(
            "    @type file\n    path {}\n    total_limit_size 8g\n",
            p.display()
        ),
        None => "    @type memory\n    total_limit_size 256m\n".to_owned(),
    };
    format!(
        "  <buffer {keys}>\n{kind}    flush_mode interval\n    flush_interval 200ms\n    chunk_limit_size 8m\n    overflow_action block\n    flush_thread_count 2\n    retry_wait 200ms\n    retry_max_interval 1s\n    retry_forever true\n{extra}  </buffer>\n"
    )
}

/// A grep filter every generated record passes (it reads the record's last key, `pad`).
pub fn grep_filter() -> String {
    "<filter bench.**>\n  @type grep\n  <regexp>\n    key pad\n    pattern /abc/\n  </regexp>\n</filter>\n".to_owned()
}

/// `null` behind a memory buffer.
pub fn null_output() -> String {
    format!(
        "<match bench.**>\n  @type null\n{}</match>\n",
        buffer("", None, "")
    )
}

/// File output of JSON lines under `out`, with a buffer (memory or file).
pub fn file_output(out: &Path, buffer_path: Option<&Path>) -> String {
    format!(
        "<match bench.**>\n  @type file\n  path {}/bench\n  <format>\n    @type json\n  </format>\n{}</match>\n",
        out.display(),
        buffer("time", buffer_path, "    timekey 1h\n")
    )
}

/// Forward output to `servers` (ports on 127.0.0.1) with acks, `params` inside `<match>`.
pub fn forward_output(servers: &[(&str, u16)], buffer_path: Option<&Path>, params: &str) -> String {
    let mut s = String::from(
        "<match bench.**>\n  @type forward\n  require_ack_response true\n  keepalive true\n",
    );
    s.push_str(params);
    for (name, port) in servers {
        s.push_str(&format!(
            "  <server>\n    name {name}\n    host 127.0.0.1\n    port {port}\n  </server>\n"
        ));
    }
    s.push_str(&buffer("tag", buffer_path, ""));
    s.push_str("</match>\n");
    s
}

/// A `<buffer>` an operator writes after reading Fluentd's docs: the type, `flush_mode
/// interval`, `flush_interval 1s`, and nothing else (8 MB chunks for memory, 256 MB for file,
/// one flush thread, `overflow_action throw_exception`, the default total limits).
pub fn operator_buffer(file: bool) -> String {
    let kind = if file { "file" } else { "memory" };
    format!(
        "  <buffer>\n    @type {kind}\n    flush_mode interval\n    flush_interval 1s\n  </buffer>\n"
    )
}

/// The archive output of the "operator defaults" pipeline: JSON lines under `out`.
pub fn operator_file_output(out: &Path, file_buffer: bool) -> String {
    format!(
        "<match bench.**>\n  @type file\n  path {}/bench\n  <format>\n    @type json\n  </format>\n{}</match>\n",
        out.display(),
        operator_buffer(file_buffer)
    )
}

/// The forward output of the "operator defaults" pipeline: acks, one server, nothing tuned
/// (`max_request_size` only when given).
pub fn operator_forward_output(port: u16, file_buffer: bool, max_request: Option<&str>) -> String {
    let max = max_request.map_or(String::new(), |m| format!("  max_request_size {m}\n"));
    format!(
        "<match bench.**>\n  @type forward\n  require_ack_response true\n{max}  <server>\n    host 127.0.0.1\n    port {port}\n  </server>\n{}</match>\n",
        operator_buffer(file_buffer)
    )
}
