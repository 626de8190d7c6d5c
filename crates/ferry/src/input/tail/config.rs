//! `<source> @type tail` parameters, with Fluentd's names and defaults.

use crate::parse::ParseSetup;
use ferry_config::Section;
use std::path::PathBuf;
use std::time::Duration;

/// `max_line_size` when not set. Fluentd has no limit; ferry keeps memory per file bounded.
pub const DEFAULT_MAX_LINE_SIZE: u64 = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct TailInputConfig {
    /// `path`: comma-separated patterns with `*` globs and strftime directives.
    pub paths: Vec<String>,
    pub exclude_path: Vec<String>,
    /// `tag`; a `*` is replaced by the path with `/` turned into `.`.
    pub tag: String,
    pub label: Option<String>,
    pub pos_file: Option<PathBuf>,
    pub read_from_head: bool,
    pub refresh_interval: Duration,
    pub rotate_wait: Duration,
    pub read_lines_limit: usize,
    /// Per file; `None` when unlimited (`-1`, the default).
    pub read_bytes_limit_per_second: Option<u64>,
    pub limit_recently_modified: Option<Duration>,
    pub path_key: Option<String>,
    pub max_line_size: u64,
    pub emit_unmatched_lines: bool,
    pub multiline_flush_interval: Option<Duration>,
    /// `enable_stat_watcher`: use inotify (the periodic stat check always runs).
    pub enable_stat_watcher: bool,
    /// `path_timezone`: zone of strftime directives in `path` (the host's when not set).
    pub path_zone: crate::time::Zone,
    pub parse: ParseSetup,
}

impl TailInputConfig {
    pub fn from_section(s: &Section<'_>) -> Self {
        let paths: Vec<String> = s
            .required_str("path")
            .map(|p| {
                let delimiter = s.str_or("path_delimiter", ",");
                p.split(delimiter.as_str())
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        // Dates in paths are `strftime` directives; a directive ferry cannot expand is an error
        // here rather than a pattern that never matches.
        for p in &paths {
            if let Err(e) = crate::time::Strftime::parse(p) {
                s.error(
                    Some("path"),
                    format!("'{p}': {e} (write a literal '%' as '%%')"),
                );
            }
        }
        let tag = s.required_str("tag").unwrap_or_default();
        let parse = match s.child("parse") {
            Some(p) => {
                let defaults = crate::parse::ParseDefaults {
                    joins_partials: true,
                    ..Default::default()
                };
                let setup = ParseSetup::from_section_with(&p, &defaults);
                p.finish();
                setup
            }
            None => {
                s.error(
                    None,
                    "<source> @type tail needs a <parse> section (e.g. @type none)",
                );
                ParseSetup::plain(crate::parse::Parser::None {
                    key: "message".into(),
                })
            }
        };
        let read_bytes_limit_per_second = match s.get("read_bytes_limit_per_second") {
            Some(v) if v.trim() == "-1" => None,
            Some(_) => s
                .opt_size("read_bytes_limit_per_second")
                .map(|b| b.0.max(1)),
            None => None,
        };
        let path_zone = crate::time::zone::read_zone(s, "path_timezone")
            .unwrap_or_else(crate::time::Zone::host);
        let read_lines_limit = s.u64_or("read_lines_limit", 1000).max(1);
        let cfg = Self {
            paths,
            exclude_path: {
                let excludes = s.array("exclude_path").unwrap_or_default();
                for p in &excludes {
                    if let Err(e) = crate::time::Strftime::parse(p) {
                        s.error(Some("exclude_path"), format!("'{p}': {e}"));
                    }
                }
                excludes
            },
            tag,
            label: s.label().map(str::to_string),
            pos_file: s.str("pos_file").map(PathBuf::from),
            read_from_head: s.bool_or("read_from_head", false),
            refresh_interval: s.duration_or("refresh_interval", Duration::from_secs(60)),
            rotate_wait: s.duration_or("rotate_wait", Duration::from_secs(5)),
            read_lines_limit: usize::try_from(read_lines_limit).unwrap_or(usize::MAX),
            read_bytes_limit_per_second,
            limit_recently_modified: s.opt_duration("limit_recently_modified"),
            path_key: s.str("path_key"),
            max_line_size: s
                .opt_size("max_line_size")
                .map_or(DEFAULT_MAX_LINE_SIZE, |b| b.0.max(1)),
            emit_unmatched_lines: s.bool_or("emit_unmatched_lines", false),
            multiline_flush_interval: s.opt_duration("multiline_flush_interval"),
            enable_stat_watcher: s.bool_or("enable_stat_watcher", true),
            path_zone,
            parse,
        };
        // Accepted, with the behaviour ferry always has: noted when set.
        let _ = s.bool_or("enable_watch_timer", true);
        let _ = s.bool_or("skip_refresh_on_startup", false);
        let _ = s.opt_duration("pos_file_compaction_interval");
        let _ = s.bool_or("ignore_repeated_permission_error", false);
        s.no_effect(
            "enable_watch_timer",
            "files are watched with inotify, and polled only where inotify cannot (logged when it happens)",
        );
        s.no_effect(
            "skip_refresh_on_startup",
            "paths are expanded once at start and again every refresh_interval",
        );
        s.no_effect(
            "pos_file_compaction_interval",
            "the position file is rewritten whole (tmp, fsync, rename), so it never needs compacting",
        );
        s.no_effect(
            "ignore_repeated_permission_error",
            "a file it cannot read is logged once per episode and retried",
        );
        let _ = s.str("glob_policy");
        s.no_effect_unless(
            "follow_inodes",
            true,
            "ferry always follows files by inode: a rotated file that a glob matches again is not read twice",
        );
        s.no_effect(
            "glob_policy",
            "paths always take *, ? and [...]; {a,b} is not supported: list such paths separated by commas",
        );
        for refused in ["encoding", "from_encoding", "open_on_every_update"] {
            if s.has(refused) {
                s.error(
                    Some(refused),
                    format!("'{refused}' is not available in this ferry build"),
                );
            }
        }
        if s.element().children.iter().any(|c| c.name == "group") {
            s.error(
                None,
                "<group> in a tail input is not available in this ferry build",
            );
        }
        if cfg.paths.is_empty() && s.has("path") {
            s.error(Some("path"), "path names no file pattern");
        }
        cfg
    }

    /// The tag of events from `path`.
    pub fn tag_for(&self, path: &str) -> String {
        if !self.tag.contains('*') {
            return self.tag.clone();
        }
        let mut flat = String::with_capacity(path.len());
        for c in path.chars() {
            let c = if c == '/' { '.' } else { c };
            if !(c == '.' && (flat.is_empty() || flat.ends_with('.'))) {
                flat.push(c);
            }
        }
        self.tag.replacen('*', &flat, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_config::Errors;

    fn read(body: &str) -> (TailInputConfig, String) {
        let text = format!("<source>\n@type tail\n{body}\n</source>\n");
        let root = ferry_config::parse_str(&text, "t.conf").unwrap();
        let errors = Errors::new();
        let s = Section::new(&root.children[0], &errors);
        assert_eq!(s.plugin_type(), Some("tail"));
        let _ = s.str("@type"); // read by the pipeline
        let cfg = TailInputConfig::from_section(&s);
        s.finish();
        let msgs = match errors.into_result(()) {
            Ok(()) => String::new(),
            Err(e) => {
                e.0.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        };
        (cfg, msgs)
    }

    #[test]
    fn defaults_are_fluentds() {
        let (c, errs) = read("path /var/log/a.log\ntag app\n<parse>\n@type none\n</parse>");
        assert_eq!(errs, "");
        assert_eq!(c.paths, vec!["/var/log/a.log"]);
        assert_eq!(c.rotate_wait, Duration::from_secs(5));
        assert_eq!(c.refresh_interval, Duration::from_secs(60));
        assert_eq!(c.read_lines_limit, 1000);
        assert_eq!(c.read_bytes_limit_per_second, None);
        assert!(!c.read_from_head);
        assert_eq!(c.max_line_size, DEFAULT_MAX_LINE_SIZE);
    }

    #[test]
    fn paths_limits_and_sizes_are_read() {
        let (c, errs) = read(
            "path /a/*.log, /b/%Y%m%d.log\nexclude_path [\"/a/skip.log\"]\ntag k.*\nread_bytes_limit_per_second 8k\nmax_line_size 16k\nlimit_recently_modified 1h\npath_timezone +09:00\n<parse>\n@type json\n</parse>",
        );
        assert_eq!(errs, "");
        assert_eq!(c.paths, vec!["/a/*.log", "/b/%Y%m%d.log"]);
        assert_eq!(c.exclude_path, vec!["/a/skip.log"]);
        assert_eq!(c.read_bytes_limit_per_second, Some(8192));
        assert_eq!(c.max_line_size, 16 * 1024);
        assert_eq!(c.limit_recently_modified, Some(Duration::from_secs(3600)));
        assert_eq!(c.path_zone, crate::time::Zone::fixed(9 * 3600));
        let (c, _) =
            read("path /x\ntag t\nread_bytes_limit_per_second -1\n<parse>\n@type none\n</parse>");
        assert_eq!(c.read_bytes_limit_per_second, None);
    }

    #[test]
    fn missing_and_unknown_settings_are_reported() {
        let (_, errs) = read("tag t");
        assert!(errs.contains("'path'"), "{errs}");
        assert!(errs.contains("<parse>"), "{errs}");
        let (_, errs) = read("path /x\ntag t\nrotate_wiat 5\n<parse>\n@type none\n</parse>");
        assert!(errs.contains("did you mean 'rotate_wait'"), "{errs}");
        let (_, errs) = read("path /x\ntag t\nencoding utf-8\n<parse>\n@type none\n</parse>");
        assert!(errs.contains("encoding"), "{errs}");
    }

    #[test]
    fn every_parameter_is_read_into_the_tail_config() {
        let (c, errs) = read(
            "path /a/*.log\nexclude_path /a/x.log,/a/y.log\ntag t\npos_file /p/pos\nread_from_head true\n\
             refresh_interval 7s\nrotate_wait 3s\nread_lines_limit 50\nlimit_recently_modified 2h\n\
             path_key file\nemit_unmatched_lines true\nmultiline_flush_interval 4s\n\
             enable_stat_watcher false\npath_timezone -05:00\n<parse>\n@type none\n</parse>",
        );
        assert_eq!(errs, "");
        assert_eq!(c.exclude_path, vec!["/a/x.log", "/a/y.log"]);
        assert_eq!(c.pos_file, Some(PathBuf::from("/p/pos")));
        assert!(c.read_from_head);
        assert_eq!(c.refresh_interval, Duration::from_secs(7));
        assert_eq!(c.rotate_wait, Duration::from_secs(3));
        assert_eq!(c.read_lines_limit, 50);
        assert_eq!(c.limit_recently_modified, Some(Duration::from_secs(7200)));
        assert_eq!(c.path_key.as_deref(), Some("file"));
        assert!(c.emit_unmatched_lines);
        assert_eq!(c.multiline_flush_interval, Some(Duration::from_secs(4)));
        assert!(!c.enable_stat_watcher);
        assert_eq!(c.path_zone, crate::time::Zone::fixed(-5 * 3600));
    }

    #[test]
    fn path_delimiter_splits_the_path_list() {
        let (c, errs) = read(
            "path /a/x,1.log|/b/*.log\npath_delimiter |\ntag t\n<parse>\n@type none\n</parse>",
        );
        assert_eq!(errs, "");
        assert_eq!(c.paths, vec!["/a/x,1.log", "/b/*.log"]);
        let (c, _) = read("path /a/x,1.log|/b/*.log\ntag t\n<parse>\n@type none\n</parse>");
        assert_eq!(
            c.paths,
            vec!["/a/x", "1.log|/b/*.log"],
            "a comma by default"
        );
    }

    #[test]
    fn character_encodings_and_open_on_every_update_are_refused() {
        for line in [
            "encoding utf-8",
            "from_encoding cp932",
            "open_on_every_update true",
        ] {
            let key = line.split(' ').next().unwrap();
            let (_, errs) = read(&format!(
                "path /x\ntag t\n{line}\n<parse>\n@type none\n</parse>"
            ));
            assert!(
                errs.contains(&format!("t.conf:5: '{key}' is not available")),
                "{errs}"
            );
        }
    }

    #[test]
    fn a_star_in_the_tag_becomes_the_path_with_dots() {
        let (c, _) = read("path /x\ntag kube.*\n<parse>\n@type none\n</parse>");
        assert_eq!(
            c.tag_for("/var/log/containers/app_ns_web-123.log"),
            "kube.var.log.containers.app_ns_web-123.log"
        );
        let (plain, _) = read("path /x\ntag plain\n<parse>\n@type none\n</parse>");
        assert_eq!(plain.tag_for("/a/b"), "plain");
    }
}
