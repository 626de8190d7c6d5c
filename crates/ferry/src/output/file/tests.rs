use super::*;
use crate::plugin::read_section;
use ferry_buffer::ChunkKey;

/// The file output of `conf`, its time slices cut in UTC (`timekey_use_utc true` added) so
/// that the names these tests expect hold whatever the host's zone.
fn file(conf: &str) -> Result<(FileConfig, BufferSetup), Vec<String>> {
    let conf = match conf.find("<buffer") {
        Some(at) => {
            let end = at + conf[at..].find('\n').unwrap_or(conf.len() - at);
            format!("{}\ntimekey_use_utc true{}", &conf[..end], &conf[end..])
        }
        None => conf.replace(
            "</match>",
            "<buffer>\ntimekey_use_utc true\n</buffer>\n</match>",
        ),
    };
    file_as_written(&conf)
}

fn file_as_written(conf: &str) -> Result<(FileConfig, BufferSetup), Vec<String>> {
    read_section(conf, |s| {
        FileConfig::from_section(
            s,
            "out",
            &crate::root_dir::RootDir::resolve(None, None),
            false,
        )
    })
    .map(|c| c.expect("a valid section gives a config"))
}

/// The path of file `index` for a chunk of tag `app.web` in the slice holding 1700000000.
fn path_of(conf: &str, index: u32, append: bool) -> String {
    let (c, setup) = file(conf).unwrap();
    let key = ChunkKey {
        tag: setup.keys.tag.then(|| "app.web".to_string()),
        timekey: setup.keys.time.then(|| setup.time_slice(1_700_000_000)),
        variables: Vec::new(),
    };
    c.template
        .render(&key, "id")
        .path(index, append)
        .display()
        .to_string()
}

#[test]
fn default_is_an_hourly_file_buffer_with_fluentds_file_names() {
    let (c, setup) = file("<match>\npath /logs/app\n</match>").unwrap();
    assert!(setup.is_file());
    assert!(
        setup.keys.time && setup.keys.tag,
        "tag is added: out_file writes it"
    );
    assert_eq!(setup.config.timekey, Some(Duration::from_secs(3600)));
    assert!(!c.writer.append && c.writer.gzip.is_none() && c.writer.line_based);
    assert!(matches!(&setup.config.buffer_type,
        ferry_buffer::BufferType::File { path } if path == std::path::Path::new("/logs/.ferry-buffer/out")));
    assert_eq!(
        path_of("<match>\npath /logs/app\n</match>", 0, false),
        "/logs/app.2023111422_0.log"
    );
    assert_eq!(
        path_of("<match>\npath /logs/app\nappend true\n</match>", 0, true),
        "/logs/app.2023111422.log"
    );
}

#[test]
fn path_rules_follow_fluentds_out_file() {
    let p = |conf: &str| path_of(&format!("<match>\n{conf}\n</match>"), 1, false);
    assert_eq!(p("path /l/app.*.txt"), "/l/app.2023111422_1.txt");
    assert_eq!(p("path /l/%Y/%m/%d/app.%H"), "/l/2023/11/14/app.22_1.log");
    assert_eq!(
        p("path /l/${tag}/app\ncompress gzip"),
        "/l/app.web/app.2023111422_1.log.gz"
    );
    assert_eq!(
        p("path /l/app\nadd_path_suffix false"),
        "/l/app.2023111422_1"
    );
    assert_eq!(
        p("path /l/app\npath_suffix .txt"),
        "/l/app.2023111422_1.txt"
    );
    let daily = "path /l/app\n<buffer time>\ntimekey 1d\n</buffer>";
    assert_eq!(p(daily), "/l/app.20231114_1.log");
    let minutes = "path /l/app\n<buffer time>\ntimekey 5m\n</buffer>";
    assert_eq!(p(minutes), "/l/app.202311142210_1.log");
    let by_tag = "path /l/${tag[1]}/app\n<buffer tag>\n</buffer>";
    assert_eq!(p(by_tag), "/l/web/app_1.log");
}

#[test]
fn path_mistakes_are_configuration_errors() {
    let bad = |conf: &str| file(&format!("<match>\n{conf}\n</match>")).is_err();
    assert!(bad("path /l/%Y%m%d/app"), "an hourly timekey needs %H too");
    assert!(
        bad("path /l/app.*\n<buffer tag>\n</buffer>"),
        "'*' needs the time key"
    );
    assert!(
        bad("path /l/%Y/app\n<buffer tag>\n</buffer>"),
        "time placeholders need the time key"
    );
    assert!(
        bad("path /l/${host}/app"),
        "a record placeholder needs its chunk key"
    );
    assert!(bad("compress gzip"), "path is required");
    assert!(bad("path /l/app\ncompress zip"));
    assert!(bad("path /l/app\ncompress gzip\ncompression_level 10"));
    assert!(bad("path /l/app\nmax_file_size 0"));
    assert!(!bad("path /l/${host}/app\n<buffer time,host>\n</buffer>"));
}

#[test]
fn formats_and_options_are_read() {
    let (c, setup) = file(
        "<match>\npath /l/app\nappend true\ncompress gzip\ncompression_level 1\n\
         max_file_size 10m\nsymlink_path /l/current\n<format>\n@type msgpack\n</format>\n\
         <buffer time>\n@type memory\ntimekey 1h\n</buffer>\n</match>",
    )
    .unwrap();
    assert!(!setup.is_file());
    assert!(!setup.keys.tag, "msgpack does not write the tag");
    assert_eq!(
        c.writer,
        WriterConfig {
            append: true,
            gzip: Some(1),
            max_file_size: Some(10 * 1024 * 1024),
            symlink_path: Some(PathBuf::from("/l/current")),
            line_based: false,
        }
    );
}

#[test]
fn compression_level_sets_how_hard_gzip_files_are_compressed() {
    let dir = tempfile::tempdir().unwrap();
    let size = |level: u32| {
        let (c, _) = file(&format!(
            "<match>\npath {}/l{level}\ncompress gzip\ncompression_level {level}\n\
             <buffer tag>\n</buffer>\n</match>",
            dir.path().display()
        ))
        .unwrap();
        let key = ChunkKey {
            tag: Some("app.web".to_string()),
            ..ChunkKey::default()
        };
        let writer = writer::FileWriter::new(c.writer);
        let mut pieces = 0;
        let written = writer
            .write(
                &c.template.render(&key, "id"),
                "id",
                &mut |buf: &mut Vec<u8>| {
                    if pieces == 20 {
                        return Ok(false);
                    }
                    for n in 0..2000u64 {
                        let v = n.wrapping_mul(2_654_435_761) % 1000;
                        buf.extend_from_slice(format!("event {pieces} {n} value {v}\n").as_bytes());
                    }
                    pieces += 1;
                    Ok(true)
                },
            )
            .unwrap();
        std::fs::metadata(&written[0]).unwrap().len()
    };
    let (fast, best) = (size(1), size(9));
    assert!(best < fast, "level 9: {best} bytes, level 1: {fast} bytes");
}

#[test]
fn timekey_zone_cuts_slices_and_names_files_in_that_zone_as_fluentd_does() {
    let p = |buffer: &str| {
        path_of_as_written(&format!(
            "<match>\npath /l/app\n<buffer time>\ntimekey {buffer}\n</buffer>\n</match>"
        ))
    };
    // 1700000000 is 2023-11-14 22:13:20 UTC, 2023-11-15 07:13:20 in Tokyo, 03:43:20 in India.
    assert_eq!(
        p("1h\ntimekey_zone +09:00"),
        ("/l/app.2023111507_0.log".into(), 1_699_999_200)
    );
    assert_eq!(
        p("1h\ntimekey_zone Asia/Tokyo"),
        ("/l/app.2023111507_0.log".into(), 1_699_999_200)
    );
    assert_eq!(
        p("1h\ntimekey_zone Asia/Kolkata"),
        ("/l/app.2023111503_0.log".into(), 1_699_997_400),
        "the hour starts at 03:00 in India, 21:30 UTC"
    );
    assert_eq!(
        p("1d\ntimekey_zone +0900"),
        ("/l/app.20231115_0.log".into(), 1_699_974_000)
    );
    assert_eq!(
        p("1d\ntimekey_zone -05"),
        ("/l/app.20231114_0.log".into(), 1_699_938_000)
    );
    assert_eq!(
        p("1d\ntimekey_zone Asia/Tokyo\ntimekey_use_utc true"),
        ("/l/app.20231114_0.log".into(), 1_699_920_000),
        "timekey_use_utc wins, as in Fluentd"
    );
    // Neither set: the host's offset at start, fixed (Fluentd's `Time.now.strftime('%z')`).
    let (_, setup) = file_as_written("<match>\npath /l/app\n</match>").unwrap();
    assert_eq!(setup.timekey_zone, crate::time::Zone::host_offset_now());
    let e = file_as_written(
        "<match>\npath /l/app\n<buffer time>\ntimekey 1h\ntimekey_zone Asia/Tokio\n</buffer>\n</match>",
    )
    .unwrap_err();
    assert!(
        e.iter()
            .any(|e| e.starts_with("test.conf:5") && e.contains("Asia/Tokyo")),
        "{e:?}"
    );
}

/// The path of file 0 of the chunk holding 1700000000, and its slice, for `conf` as written.
fn path_of_as_written(conf: &str) -> (String, i64) {
    let (c, setup) = file_as_written(conf).unwrap();
    let slice = setup.time_slice(1_700_000_000);
    let key = ChunkKey {
        tag: Some("app.web".to_string()),
        timekey: Some(slice),
        variables: Vec::new(),
    };
    let path = c.template.render(&key, "id").path(0, false);
    (path.display().to_string(), slice)
}
