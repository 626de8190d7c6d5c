//! Property tests: no parser type panics on any input, and every record is one msgpack map.

use super::tests::setup;
use super::*;
use bytes::BytesMut;
use ferry_proto::msgpack::Value;

/// Every parser type, as the tail input and the parser filter configure it.
const EVERY_PARSER: &[&str] = &[
    "@type none",
    "@type json",
    "@type json\ntime_format %d/%b/%Y:%H:%M:%S %z\nkeep_time_key true",
    "@type regexp\nexpression /^(?<host>\\S+) (?<code>\\d+) (?<time>[^ ]+) (?<rest>.*)$/\ntypes code:integer\ntime_format %Y-%m-%dT%H:%M:%S.%3N%z",
    "@type apache2",
    "@type nginx",
    "@type syslog",
    "@type syslog\nmessage_format rfc5424",
    "@type ltsv\nnull_value_pattern /^-$/\nnull_empty_string true",
    "@type csv\nkeys a,b,time\ntime_key time\ntypes a:float,b:bool",
    "@type tsv\nkeys a,b",
    "@type cri",
    "@type multiline\nformat_firstline /^\\d/\nformat1 /^(?<time>\\d+) (?<msg>.*)/\ntime_type unixtime",
];

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    #[test]
    fn no_parser_panics_on_any_bytes_and_every_record_is_one_msgpack_map(
        line in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        which in 0..EVERY_PARSER.len(),
    ) {
        let s = setup(EVERY_PARSER[which]);
        let mut rec = Record::new();
        if s.parse(&line, &mut rec).is_ok() {
            let mut map = BytesMut::new();
            rec.write_map(&mut map);
            let (value, used) = Value::decode(&map).unwrap();
            proptest::prop_assert_eq!(used, map.len());
            proptest::prop_assert!(matches!(value, Value::Map(_)));
        }
    }

    #[test]
    fn text_shaped_like_each_format_never_panics_either(
        host in "[a-z0-9.:-]{0,20}",
        code in "[0-9]{0,4}",
        time in "[0-9A-Za-z/:+. TZ-]{0,40}",
        rest in "[ -~]{0,60}",
        which in 0..EVERY_PARSER.len(),
    ) {
        let s = setup(EVERY_PARSER[which]);
        let mut rec = Record::new();
        for line in [
            format!("{host} {code} {time} {rest}"),
            format!("{time} stdout F {rest}"),
            format!("<{code}>{time} {host} {rest}"),
            format!("{{\"time\":\"{time}\",\"a\":{code}0}}"),
            format!("a:{host}\ttime:{time}\tb:{rest}"),
            format!("{host},{code},{time}"),
        ] {
            let _ = s.parse(line.as_bytes(), &mut rec);
        }
    }
}
