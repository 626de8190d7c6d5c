//! Reading `shared/vectors/{fluentd,fluentbit}`: every file is accounted for (a capture, its
//! description, an index/summary, statistics, or documentation), or loading fails naming it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde_json::Value as J;
use sha2::{Digest, Sha256};

use super::frames_every_way;
use super::render::Convention;

/// Root of the vectors: `$FERRY_VECTORS`, else `shared/vectors` beside the repository.
pub fn vectors_root() -> PathBuf {
    match std::env::var_os("FERRY_VECTORS") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dir {
    C2s,
    S2c,
}

/// One described message: where it is in its stream and its JSON description.
#[derive(Debug, Clone)]
pub struct Expected {
    pub offset: usize,
    pub len: usize,
    pub msg: J,
}

/// One direction of one connection.
#[derive(Debug)]
pub struct Stream {
    pub file: PathBuf,
    pub bytes: Vec<u8>,
    /// The frames, split every way (see [`frames_every_way`]); empty for JSON-text and datagram
    /// streams.
    pub frames: Vec<Bytes>,
    /// Message lists describing this stream (a fluentd JSON may list them twice: per direction
    /// and in the exchange); each must match `frames` completely.
    pub lists: Vec<Vec<Expected>>,
    /// JSON-mode text (Fluentd's convenience mode) instead of msgpack.
    pub json_text: Option<String>,
    /// UDP datagrams (hex) instead of a TCP stream.
    pub datagrams: Option<Vec<String>>,
}

/// One captured connection (or one-directional capture).
#[derive(Debug)]
pub struct Vector {
    pub name: String,
    pub conv: Convention,
    pub c2s: Option<Stream>,
    pub s2c: Option<Stream>,
    /// Server (in_forward) and client configuration text, when captured.
    pub server_config: Option<String>,
    pub client_config: Option<String>,
    /// Fluentd's `digest_verification.inputs`.
    pub digest_inputs: Option<J>,
}

impl Vector {
    pub fn streams(&self) -> impl Iterator<Item = (Dir, &Stream)> {
        [(Dir::C2s, &self.c2s), (Dir::S2c, &self.s2c)]
            .into_iter()
            .filter_map(|(d, s)| s.as_ref().map(|s| (d, s)))
    }
}

/// Every vector, plus counts of the other files, after checking that nothing is left over.
pub struct Loaded {
    pub vectors: Vec<Vector>,
    pub docs: usize,
    pub indexes: usize,
    pub statistics: usize,
}

fn read_json(path: &Path) -> J {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read_bin(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn check_digest(path: &Path, bytes: &[u8], len: Option<u64>, sha: Option<&str>) {
    if let Some(len) = len {
        assert_eq!(
            bytes.len() as u64,
            len,
            "{}: length differs from its description",
            path.display()
        );
    }
    if let Some(sha) = sha {
        assert_eq!(
            hex::encode(Sha256::digest(bytes)),
            sha,
            "{}: sha256 differs",
            path.display()
        );
    }
}

fn expected_list(items: &[J], dir: Option<&str>) -> Vec<Expected> {
    items
        .iter()
        .filter(|m| dir.is_none_or(|d| m["dir"] == d))
        .filter(|m| m.get("text").is_none())
        .map(|m| Expected {
            offset: m["offset"].as_u64().expect("message offset") as usize,
            len: m
                .get("len")
                .or(m.get("length"))
                .and_then(J::as_u64)
                .expect("message length") as usize,
            msg: m.clone(),
        })
        .collect()
}

fn stream(file: PathBuf, lists: Vec<Vec<Expected>>) -> Stream {
    let bytes = read_bin(&file);
    let frames = frames_every_way(&file.display().to_string(), &bytes);
    Stream {
        file,
        bytes,
        frames,
        lists,
        json_text: None,
        datagrams: None,
    }
}

/// Direction of a capture file, from its name.
fn dir_of(name: &str) -> Dir {
    if name.contains(".s2c.") || name.contains(".resp.") {
        Dir::S2c
    } else {
        Dir::C2s
    }
}

/// A fluentd description (`files`, messages per direction and/or `exchange`).
fn fluentd_vector(dir: &Path, desc: &J, claimed: &mut BTreeSet<PathBuf>) -> Vector {
    let name = desc["name"]
        .as_str()
        .expect("fluentd vector name")
        .to_owned();
    let files = desc["files"].as_object().expect("files map");
    let exchange = desc.get("exchange").and_then(J::as_array).cloned();
    let mut streams: BTreeMap<Dir, Stream> = BTreeMap::new();
    for (file, info) in files {
        let path = dir.join(file);
        assert!(claimed.insert(path.clone()), "{file} described twice");
        let d = dir_of(file);
        let bytes = read_bin(&path);
        check_digest(&path, &bytes, info["len"].as_u64(), info["sha256"].as_str());
        let key = match d {
            Dir::C2s => "client_to_server_messages",
            Dir::S2c => "server_to_client_messages",
        };
        let tag = match d {
            Dir::C2s => "c2s",
            Dir::S2c => "s2c",
        };
        if let Some(datagrams) = desc.get("datagrams").and_then(J::as_array) {
            let hexes = datagrams
                .iter()
                .filter(|g| g["dir"] == tag)
                .map(|g| g["hex"].as_str().expect("datagram hex").to_owned())
                .collect();
            streams.insert(
                d,
                Stream {
                    file: path,
                    bytes,
                    frames: vec![],
                    lists: vec![],
                    json_text: None,
                    datagrams: Some(hexes),
                },
            );
            continue;
        }
        if let Some(ex) = &exchange {
            if ex.iter().any(|m| m.get("text").is_some()) {
                let text: String = ex
                    .iter()
                    .filter(|m| m["dir"] == tag)
                    .map(|m| m["text"].as_str().expect("JSON-mode exchange text"))
                    .collect();
                streams.insert(
                    d,
                    Stream {
                        file: path,
                        bytes,
                        frames: vec![],
                        lists: vec![],
                        json_text: Some(text),
                        datagrams: None,
                    },
                );
                continue;
            }
        }
        let mut lists = Vec::new();
        if let Some(items) = desc.get(key).and_then(J::as_array) {
            lists.push(expected_list(items, None));
        }
        if let Some(ex) = &exchange {
            lists.push(expected_list(ex, Some(tag)));
        }
        if lists.is_empty() {
            // A capture with no messages must be empty (heartbeat_transport, replies never sent).
            assert!(
                bytes.is_empty(),
                "{file}: bytes without any described message"
            );
        }
        streams.insert(d, stream(path, lists));
    }
    Vector {
        name,
        conv: Convention::Fluentd,
        c2s: streams.remove(&Dir::C2s),
        s2c: streams.remove(&Dir::S2c),
        server_config: desc["receiver_config"].as_str().map(str::to_owned),
        client_config: desc["sender_config"].as_str().map(str::to_owned),
        digest_inputs: desc.pointer("/digest_verification/inputs").cloned(),
    }
}

/// A Fluent Bit description of one file (`file`, `messages` with `decoded`).
fn fluentbit_stream(
    dir: &Path,
    desc: &J,
    claimed: &mut BTreeSet<PathBuf>,
) -> (String, Dir, Stream) {
    let file = desc["file"].as_str().expect("file");
    let path = dir.join(file);
    assert!(claimed.insert(path.clone()), "{file} described twice");
    let d = dir_of(file);
    let conn = file
        .trim_end_matches(".bin")
        .trim_end_matches(".c2s")
        .trim_end_matches(".s2c")
        .trim_end_matches(".req")
        .trim_end_matches(".resp")
        .to_owned();
    let s = stream(
        path.clone(),
        vec![expected_list(
            desc["messages"].as_array().expect("messages"),
            None,
        )],
    );
    check_digest(
        &path,
        &s.bytes,
        desc["bytes"].as_u64(),
        desc["sha256"].as_str(),
    );
    assert_eq!(
        desc["trailing_undecoded_bytes"], 0,
        "{file}: trailing bytes"
    );
    (conn, d, s)
}

/// Load every vector under the root; panics on any file that is not understood.
pub fn load_all() -> Loaded {
    let root = vectors_root();
    let mut loaded = Loaded {
        vectors: vec![],
        docs: 0,
        indexes: 0,
        statistics: 0,
    };
    for (sub, conv) in [
        ("fluentd", Convention::Fluentd),
        ("fluentbit", Convention::FluentBit),
    ] {
        let dir = root.join(sub);
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("dir entry").path())
            .collect();
        paths.sort();
        let bins: BTreeSet<PathBuf> = paths
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "bin"))
            .cloned()
            .collect();
        let mut claimed = BTreeSet::new();
        let mut fb_conns: BTreeMap<String, (Option<Stream>, Option<Stream>, J)> = BTreeMap::new();
        for path in &paths {
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            match ext {
                "md" | "log" => loaded.docs += 1,
                "bin" => {}
                "json" => {
                    let desc = read_json(path);
                    if let Some(list) = desc.as_array() {
                        check_list(&dir, path, list, &bins);
                        loaded.indexes += 1;
                    } else if desc.get("files").is_some() && conv == Convention::Fluentd {
                        loaded
                            .vectors
                            .push(fluentd_vector(&dir, &desc, &mut claimed));
                    } else if desc.get("file").is_some() && conv == Convention::FluentBit {
                        let (conn, d, s) = fluentbit_stream(&dir, &desc, &mut claimed);
                        let e = fb_conns.entry(conn).or_insert((None, None, J::Null));
                        match d {
                            Dir::C2s => e.0 = Some(s),
                            Dir::S2c => e.1 = Some(s),
                        }
                        if e.2.is_null() || d == Dir::C2s {
                            e.2 = desc;
                        }
                    } else if is_statistics(&desc) {
                        loaded.statistics += 1;
                    } else {
                        panic!(
                            "{}: a JSON file the vector test cannot interpret",
                            path.display()
                        );
                    }
                }
                _ => panic!(
                    "{}: a file the vector test cannot interpret",
                    path.display()
                ),
            }
        }
        let unclaimed: Vec<_> = bins.difference(&claimed).collect();
        assert!(
            unclaimed.is_empty(),
            "captures without a description: {unclaimed:?}"
        );
        for (name, (c2s, s2c, desc)) in fb_conns {
            let config = |k: &str| desc.get(k).and_then(J::as_str).map(str::to_owned);
            loaded.vectors.push(Vector {
                name: format!("fluentbit/{name}"),
                conv,
                c2s,
                s2c,
                server_config: config("fluent_bit_server_config (in_forward)").or_else(|| {
                    if desc.get("client").is_some() {
                        config("fluent_bit_config")
                    } else {
                        None
                    }
                }),
                client_config: config("fluent_bit_client_config (out_forward)").or_else(|| {
                    if desc.get("client").is_none() {
                        config("fluent_bit_config")
                    } else {
                        None
                    }
                }),
                digest_inputs: None,
            });
        }
    }
    loaded
}

/// Statistics without captured bytes (e.g. frame sizes of a 20 MB run): messages carry sizes
/// but no decoded content, and no capture file belongs to them.
fn is_statistics(desc: &J) -> bool {
    desc.get("messages").and_then(J::as_array).is_some_and(|m| {
        m.iter()
            .all(|x| x.get("decoded").is_none() && x.get("value").is_none() && x["bytes"].is_u64())
    })
}

/// An index (`[{name, files}]`: every capture listed, every listed file present) or a summary of
/// request/response pairs (`[{case, request_bytes, response_hex}]`: matches the captures).
fn check_list(dir: &Path, path: &Path, list: &[J], bins: &BTreeSet<PathBuf>) {
    let what = path.display();
    if list.iter().all(|e| e.get("files").is_some()) {
        let mut listed = BTreeSet::new();
        for e in list {
            for f in e["files"].as_array().expect("files") {
                let p = dir.join(f.as_str().expect("file name"));
                assert!(p.exists(), "{what}: lists missing {}", p.display());
                listed.insert(p);
            }
        }
        assert_eq!(&listed, bins, "{what}: index and captures differ");
    } else if list.iter().all(|e| e.get("case").is_some()) {
        for e in list {
            let case = e["case"].as_str().expect("case");
            let req = read_bin(&dir.join(format!("{case}.req.bin")));
            assert_eq!(
                req.len() as u64,
                e["request_bytes"].as_u64().expect("request_bytes"),
                "{what}: {case}"
            );
            let resp_path = dir.join(format!("{case}.resp.bin"));
            let resp = if resp_path.exists() {
                read_bin(&resp_path)
            } else {
                vec![]
            };
            assert_eq!(
                hex::encode(&resp),
                e["response_hex"].as_str().expect("response_hex"),
                "{what}: {case}"
            );
        }
    } else {
        panic!("{what}: a JSON list the vector test cannot interpret");
    }
}
