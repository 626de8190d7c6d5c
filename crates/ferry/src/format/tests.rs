use super::*;
use crate::plugin::read_section;
use bytes::BytesMut;
use ferry_proto::encode::write_entry;
use ferry_proto::time::EventTime;

/// The format of `conf`, writing in UTC where it would write in the host's zone, so that what
/// these tests expect does not depend on the machine's zone.
fn format(conf: &str, default: FormatKind) -> FormatConfig {
    let mut f = format_on_host(conf, default);
    for zone in [&mut f.options.zone, &mut f.inject.zone] {
        if *zone == Zone::host() {
            *zone = Zone::UTC;
        }
    }
    f
}

fn format_on_host(conf: &str, default: FormatKind) -> FormatConfig {
    read_section(conf, |s| FormatConfig::from_section(s, default)).unwrap()
}

fn stream() -> Vec<u8> {
    let record = Value::Map(vec![
        (
            Value::Str("message".into()),
            Value::Str("hello\tworld".into()),
        ),
        (Value::Str("n".into()), Value::UInt(7)),
    ]);
    let mut out = BytesMut::new();
    let t = EventTime {
        sec: 1_700_000_000,
        nsec: 250_000_000,
    };
    write_entry(&mut out, t, false, &record.to_bytes());
    out.to_vec()
}

fn render(conf: &str, default: FormatKind) -> String {
    let mut out = Vec::new();
    assert_eq!(
        format(conf, default).write_stream("app.web", &stream(), &mut out),
        0
    );
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn out_file_writes_time_tab_tag_tab_json_like_fluentd() {
    assert_eq!(
        render("<match>\n</match>", FormatKind::OutFile),
        "2023-11-14T22:13:20+0000\tapp.web\t{\"message\":\"hello\\tworld\",\"n\":7}\n"
    );
    let conf = "<match>\n<format>\n@type out_file\noutput_tag false\ndelimiter COMMA\n\
                time_type unixtime\n</format>\n</match>";
    assert_eq!(
        render(conf, FormatKind::Json),
        "1700000000,{\"message\":\"hello\\tworld\",\"n\":7}\n"
    );
    let conf = "<match>\n<format>\ntime_format %Y%m%d %H:%M:%S.%L\n</format>\n</match>";
    assert!(render(conf, FormatKind::OutFile).starts_with("20231114 22:13:20.250\tapp.web\t"));
}

#[test]
fn json_writes_one_object_per_line_with_injected_fields() {
    let conf = "<match>\n<format>\n@type json\n</format>\n<inject>\ntag_key tag\ntime_key time\n\
                </inject>\n</match>";
    assert_eq!(
        render(conf, FormatKind::Stdout),
        "{\"message\":\"hello\\tworld\",\"n\":7,\"tag\":\"app.web\",\"time\":1700000000.25}\n"
    );
    let conf = "<match>\n<format>\n@type json\nadd_newline false\n</format>\n<inject>\n\
                time_key t\ntime_type string\ntime_format %s\n</inject>\n</match>";
    assert_eq!(
        render(conf, FormatKind::Stdout),
        "{\"message\":\"hello\\tworld\",\"n\":7,\"t\":\"1700000000\"}"
    );
}

#[test]
fn out_file_and_inject_write_times_in_their_zone() {
    let line = |format: &str, inject: &str| {
        render(
            &format!(
                "<match>\n<format>\n@type out_file\n{format}\n</format>\n<inject>\n\
                 time_key t\ntime_type string\n{inject}\n</inject>\n</match>"
            ),
            FormatKind::OutFile,
        )
    };
    assert_eq!(
        line("timezone Asia/Tokyo", "timezone -05:00"),
        "2023-11-15T07:13:20+0900\tapp.web\t{\"message\":\"hello\\tworld\",\"n\":7,\
         \"t\":\"2023-11-14T17:13:20.250000000-05:00\"}\n"
    );
    assert_eq!(
        line("utc true", "localtime false\ntime_format %H:%M %Z"),
        "2023-11-14T22:13:20+0000\tapp.web\t{\"message\":\"hello\\tworld\",\"n\":7,\
         \"t\":\"22:13 UTC\"}\n"
    );
    // `timezone` wins over `localtime`, as in Fluentd.
    assert!(line("localtime true\ntimezone +01:00", "").starts_with("2023-11-14T23:13:20+0100\t"));
    // By default both write the host's zone, as Fluentd's.
    let host = format_on_host(
        "<match>\n<inject>\ntime_key t\ntime_type string\n</inject>\n</match>",
        FormatKind::Stdout,
    );
    assert_eq!(host.options.zone, Zone::host());
    assert_eq!(host.inject.zone, Zone::host());
}

#[test]
fn zone_parameters_that_fluentd_refuses_are_errors_at_their_line() {
    let errors = |body: &str| {
        read_section(
            &format!("<match>\n<format>\n@type out_file\n{body}\n</format>\n</match>"),
            |s| FormatConfig::from_section(s, FormatKind::OutFile),
        )
        .unwrap_err()
    };
    let e = errors("timezone Asia/Tokio");
    assert!(
        e.iter()
            .any(|e| e.starts_with("test.conf:4") && e.contains("did you mean 'Asia/Tokyo'")),
        "{e:?}"
    );
    let e = errors("localtime true\nutc true");
    assert!(
        e.iter()
            .any(|e| e.contains("both of utc and localtime are specified")),
        "{e:?}"
    );
    assert!(!errors("timezone JST").is_empty());
}

#[test]
fn stdout_writes_fluentds_stdout_line() {
    assert_eq!(
        render("<match>\n</match>", FormatKind::Stdout),
        "2023-11-14 22:13:20.250000000 +0000 app.web: {\"message\":\"hello\\tworld\",\"n\":7}\n"
    );
}

#[test]
fn ltsv_csv_and_single_value_write_fields_by_name() {
    let ltsv = "<match>\n<format>\n@type ltsv\n</format>\n</match>";
    assert_eq!(render(ltsv, FormatKind::Json), "message:hello world\tn:7\n");
    let csv = "<match>\n<format>\n@type csv\nfields n,message,none\n</format>\n</match>";
    assert_eq!(
        render(csv, FormatKind::Json),
        "\"7\",\"hello\tworld\",\"\"\n"
    );
    let single = "<match>\n<format>\n@type single_value\n</format>\n</match>";
    assert_eq!(render(single, FormatKind::Json), "hello\tworld\n");
    let single = "<match>\n<format>\n@type single_value\nmessage_key n\nadd_newline false\n\
                  </format>\n</match>";
    assert_eq!(render(single, FormatKind::Json), "7");
}

#[test]
fn msgpack_writes_the_record_with_injected_fields() {
    let conf = "<match>\n<format>\n@type msgpack\n</format>\n<inject>\ntag_key tag\n</inject>\n\
                </match>";
    let mut out = Vec::new();
    format(conf, FormatKind::Json).write_stream("app.web", &stream(), &mut out);
    let (v, used) = Value::decode(&out).unwrap();
    assert_eq!(used, out.len());
    assert_eq!(v.get("tag"), Some(&Value::Str("app.web".into())));
    assert_eq!(v.get("n"), Some(&Value::UInt(7)));
}

#[test]
fn bad_format_parameters_are_configuration_errors() {
    let errors =
        |conf: &str| read_section(conf, |s| FormatConfig::from_section(s, FormatKind::Json));
    assert!(errors("<match>\n<format>\n@type csv\n</format>\n</match>").is_err());
    assert!(errors("<match>\n<format>\n@type jsn\n</format>\n</match>").is_err());
    assert!(errors("<match>\n<format>\n@type json\nbogus 1\n</format>\n</match>").is_err());
    assert!(
        errors("<match>\n<format>\n@type out_file\nlocaltime true\n</format>\n</match>").is_ok()
    );
    assert!(
        errors("<match>\n<format>\n@type out_file\ntime_format %Q\n</format>\n</match>").is_err()
    );
    assert!(errors("<match>\n<format>\n@type out_file\nutc\n</format>\n</match>").is_ok());
    assert!(errors("<match>\n<format>\n@type out_file\nutc false\n</format>\n</match>").is_ok());
    assert!(
        errors("<match>\n<format>\n@type out_file\ntimezone +09:00\n</format>\n</match>").is_ok()
    );
    assert!(errors("<match>\n<format>\n@type out_file\ntimezone UTC\n</format>\n</match>").is_ok());
    assert!(
        errors("<match>\n<format>\n@type stdout\noutput_type msgpack\n</format>\n</match>")
            .is_err()
    );
    assert!(
        errors("<match>\n<format>\n@type stdout\noutput_type json\n</format>\n</match>").is_ok()
    );
}

#[test]
fn out_file_can_leave_out_the_time_or_write_it_as_epoch_seconds() {
    let conf = "<match>\n<format>\n@type out_file\noutput_time false\n</format>\n</match>";
    assert_eq!(
        render(conf, FormatKind::OutFile),
        "app.web\t{\"message\":\"hello\\tworld\",\"n\":7}\n"
    );
    let conf = "<match>\n<format>\n@type out_file\ntime_as_epoch true\n</format>\n</match>";
    assert!(
        render(conf, FormatKind::OutFile).starts_with("1700000000\tapp.web\t"),
        "{}",
        render(conf, FormatKind::OutFile)
    );
}

#[test]
fn ltsv_and_csv_separators_quotes_and_replacement_are_configurable() {
    let ltsv = "<match>\n<format>\n@type ltsv\ndelimiter |\nlabel_delimiter =\nreplacement _\n\
                </format>\n</match>";
    assert_eq!(
        render(ltsv, FormatKind::Json),
        "message=hello\tworld|n=7\n",
        "a tab is not the delimiter here, so it is kept"
    );
    let ltsv = "<match>\n<format>\n@type ltsv\nreplacement _\n</format>\n</match>";
    assert_eq!(render(ltsv, FormatKind::Json), "message:hello_world\tn:7\n");
    let csv = "<match>\n<format>\n@type csv\nfields n,message\nforce_quotes false\n\
               </format>\n</match>";
    assert_eq!(render(csv, FormatKind::Json), "7,hello\tworld\n");
    let csv = "<match>\n<format>\n@type csv\nfields n,message\ndelimiter \\t\n\
               force_quotes false\n</format>\n</match>";
    assert_eq!(
        render(csv, FormatKind::Json),
        "7\t\"hello\tworld\"\n",
        "a field holding the delimiter is quoted"
    );
}

#[test]
fn inject_hostname_key_adds_the_host_name() {
    let conf = "<match>\n<format>\n@type json\n</format>\n<inject>\nhostname_key host\n\
                hostname web-7\n</inject>\n</match>";
    assert_eq!(
        render(conf, FormatKind::Json),
        "{\"message\":\"hello\\tworld\",\"n\":7,\"host\":\"web-7\"}\n"
    );
    let conf = "<match>\n<format>\n@type json\n</format>\n<inject>\nhostname_key host\n\
                </inject>\n</match>";
    let line = render(conf, FormatKind::Json);
    assert!(
        line.contains(&format!("\"host\":\"{}\"", crate::plugin::hostname())),
        "without hostname, the machine's name: {line}"
    );
}

#[test]
fn broken_entries_are_counted_and_leave_no_partial_line() {
    let f = format("<match>\n</match>", FormatKind::Json);
    let mut s = stream();
    let good = s.clone();
    s.extend_from_slice(&good[..good.len() - 3]);
    let mut out = Vec::new();
    assert_eq!(f.write_stream("t", &s, &mut out), 1);
    assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1);
    assert!(out.ends_with(b"}\n"));
}

/// Every format, fed any bytes where a chunk's entries should be, never panics; it counts what it
/// cannot decode. The JSON-line formats escape every newline, so each decoded event is exactly
/// one line.
mod any_bytes {
    use super::*;
    use proptest::prelude::*;

    const FORMATS: [(&str, bool); 8] = [
        ("<match>\n</match>", true),
        (
            "<match>\n<format>\n@type json\n</format>\n<inject>\ntag_key tag\ntime_key time\n</inject>\n</match>",
            true,
        ),
        (
            "<match>\n<format>\n@type out_file\ntime_type float\n</format>\n</match>",
            true,
        ),
        ("<match>\n<format>\n@type ltsv\n</format>\n</match>", false),
        (
            "<match>\n<format>\n@type csv\nfields n,message\n</format>\n</match>",
            false,
        ),
        (
            "<match>\n<format>\n@type single_value\n</format>\n</match>",
            false,
        ),
        (
            "<match>\n<format>\n@type msgpack\n</format>\n</match>",
            false,
        ),
        (
            "<match>\n<format>\n@type out_file\ntime_format %Y-%m-%dT%H:%M:%S.%N%z\n</format>\n</match>",
            true,
        ),
    ];

    fn check(stream: &[u8]) -> Result<(), TestCaseError> {
        let entries = ferry_proto::entries::iter(stream).count() as u64;
        for (i, (conf, one_line_each)) in FORMATS.iter().enumerate() {
            let default = if i == 0 {
                FormatKind::Stdout
            } else {
                FormatKind::OutFile
            };
            let mut out = Vec::new();
            let broken = format(conf, default).write_stream("t.x", stream, &mut out);
            prop_assert!(broken <= entries);
            if *one_line_each {
                let lines = out.iter().filter(|b| **b == b'\n').count() as u64;
                prop_assert_eq!(lines, entries - broken, "{}", conf);
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            check(&bytes)?;
        }

        #[test]
        fn valid_entries_with_bytes_changed(
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        ) {
            let mut s = stream();
            let good = s.clone();
            s.extend_from_slice(&good);
            for (at, byte) in flips {
                let i = at.index(s.len());
                s[i] = byte;
            }
            check(&s)?;
        }
    }
}

#[test]
fn stdout_output_types_write_the_record_as_json_ltsv_or_a_ruby_hash() {
    let line = |t: &str| {
        render(
            &format!("<match>\n<format>\n@type stdout\noutput_type {t}\n</format>\n</match>"),
            FormatKind::Json,
        )
    };
    let head = "2023-11-14 22:13:20.250000000 +0000 app.web: ";
    assert_eq!(
        line("json"),
        format!("{head}{{\"message\":\"hello\\tworld\",\"n\":7}}\n")
    );
    assert_eq!(line("ltsv"), format!("{head}message:hello world\tn:7\n"));
    assert_eq!(
        line("hash"),
        format!("{head}{{\"message\"=>\"hello\\tworld\", \"n\"=>7}}\n")
    );
}
