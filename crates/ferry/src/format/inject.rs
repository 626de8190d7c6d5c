//! `<inject>`: the tag, the time and the host name copied into each record before formatting.

use super::json::Extra;
use crate::time::{Strftime, Zone, write_rfc3339, zone};
use ferry_config::Section;
use ferry_proto::time::EventTime;

/// `time_type` of `<inject>` (Fluentd's default is `float`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TimeType {
    /// Seconds since the epoch with the nanoseconds as a fraction.
    #[default]
    Float,
    /// Whole seconds since the epoch.
    Unixtime,
    UnixtimeMillis,
    UnixtimeMicros,
    UnixtimeNanos,
    /// `time_format` if set, else `2026-11-21T15:19:13.123456789+09:00`, in `zone`.
    String,
}

/// `<inject>`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InjectConfig {
    pub tag_key: Option<String>,
    pub time_key: Option<String>,
    pub hostname_key: Option<String>,
    pub hostname: String,
    /// `worker_id_key`: ferry is one process, Fluentd's worker 0.
    pub worker_id_key: Option<String>,
    pub time_type: TimeType,
    pub time_format: Option<Strftime>,
    /// The zone of `time_type string` (`localtime`, `utc`, `timezone`; the host's by default).
    pub zone: Zone,
}

impl InjectConfig {
    /// Reads the `<inject>` child of an output section, if any.
    pub fn from_parent(section: &Section<'_>) -> Self {
        let Some(s) = section.child("inject") else {
            return Self::default();
        };
        let time_type = match s.enum_or(
            "time_type",
            &[
                "float",
                "unixtime",
                "unixtime_millis",
                "unixtime_micros",
                "unixtime_nanos",
                "string",
            ],
            "float",
        ) {
            "unixtime" => TimeType::Unixtime,
            "unixtime_millis" => TimeType::UnixtimeMillis,
            "unixtime_micros" => TimeType::UnixtimeMicros,
            "unixtime_nanos" => TimeType::UnixtimeNanos,
            "string" => TimeType::String,
            _ => TimeType::Float,
        };
        let time_format = read_time_format(&s, "time_format");
        let zone = zone::from_section(&s);
        let hostname_key = s.str("hostname_key");
        let hostname = match (&hostname_key, s.str("hostname")) {
            (_, Some(h)) => h,
            (Some(_), None) => crate::plugin::hostname(),
            (None, None) => String::new(),
        };
        let cfg = Self {
            tag_key: s.str("tag_key"),
            time_key: s.str("time_key"),
            hostname_key,
            hostname,
            worker_id_key: s.str("worker_id_key"),
            time_type,
            time_format,
            zone,
        };
        s.finish();
        cfg
    }

    pub fn is_empty(&self) -> bool {
        self.tag_key.is_none()
            && self.time_key.is_none()
            && self.hostname_key.is_none()
            && self.worker_id_key.is_none()
    }

    /// The pairs to add to one event's record.
    pub fn extras<'a>(&'a self, tag: &str, time: EventTime, out: &mut Vec<(&'a str, Extra)>) {
        out.clear();
        if let Some(key) = &self.hostname_key {
            out.push((key, Extra::Str(self.hostname.clone())));
        }
        if let Some(key) = &self.worker_id_key {
            out.push((key, Extra::UInt(0)));
        }
        if let Some(key) = &self.tag_key {
            out.push((key, Extra::Str(tag.to_string())));
        }
        if let Some(key) = &self.time_key {
            let ns = u64::from(time.sec) * 1_000_000_000 + u64::from(time.nsec.min(999_999_999));
            let value = match self.time_type {
                TimeType::Float => Extra::F64(f64::from(time.sec) + f64::from(time.nsec) / 1e9),
                TimeType::Unixtime => Extra::UInt(u64::from(time.sec)),
                TimeType::UnixtimeMillis => Extra::UInt(ns / 1_000_000),
                TimeType::UnixtimeMicros => Extra::UInt(ns / 1_000),
                TimeType::UnixtimeNanos => Extra::UInt(ns),
                TimeType::String => {
                    let mut s = String::new();
                    match &self.time_format {
                        Some(f) => f.write(time, &self.zone, &mut s),
                        None => write_rfc3339(time, &self.zone, &mut s),
                    }
                    Extra::Str(s)
                }
            };
            out.push((key, value));
        }
    }
}

/// Reads a `strftime` parameter, reporting a bad format at its line.
pub fn read_time_format(s: &Section<'_>, key: &str) -> Option<Strftime> {
    let raw = s.str(key)?;
    match Strftime::parse(&raw) {
        Ok(f) => Some(f),
        Err(e) => {
            s.error(Some(key), format!("invalid {key} '{raw}': {e}"));
            None
        }
    }
}
