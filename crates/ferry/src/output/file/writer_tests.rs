use super::*;
use crate::output::placeholders::{IndexStyle, Template};
use ferry_buffer::ChunkKey;
use std::io::Read;

fn rendered(dir: &Path, name: &str) -> Rendered {
    let t = Template::parse(
        &format!("{}/{name}\u{0}.log", dir.display()),
        IndexStyle::Underscore,
        crate::time::Zone::UTC,
    )
    .unwrap();
    t.render(&ChunkKey::default(), "c0ffee")
}

fn config(append: bool) -> WriterConfig {
    WriterConfig {
        append,
        gzip: None,
        max_file_size: None,
        symlink_path: None,
        line_based: true,
    }
}

/// A source of `pieces` pieces of `lines` lines each; fails instead of piece `fail_at`.
fn source(
    pieces: usize,
    lines: usize,
    fail_at: Option<usize>,
) -> impl FnMut(&mut Vec<u8>) -> Result<bool, SinkError> {
    let mut n = 0;
    move |buf: &mut Vec<u8>| {
        if Some(n) == fail_at {
            return Err(SinkError::BadChunk("source failed".into()));
        }
        if n == pieces {
            return Ok(false);
        }
        for l in 0..lines {
            buf.extend_from_slice(format!("piece {n} line {l}\n").as_bytes());
        }
        n += 1;
        Ok(true)
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn each_chunk_becomes_a_new_numbered_file_and_no_temporary_file_remains() {
    let dir = tempfile::tempdir().unwrap();
    let w = FileWriter::new(config(false));
    let r = rendered(dir.path(), "app");
    for _ in 0..3 {
        let written = w.write(&r, "c0ffee", &mut source(2, 5, None)).unwrap();
        assert_eq!(written.len(), 1);
    }
    assert_eq!(
        names(dir.path()),
        vec!["app_0.log", "app_1.log", "app_2.log"]
    );
    let text = fs::read_to_string(dir.path().join("app_1.log")).unwrap();
    assert_eq!(text.lines().count(), 10);
    // A fresh writer (a restart) does not overwrite existing numbers.
    let w = FileWriter::new(config(false));
    w.write(&r, "other", &mut source(1, 1, None)).unwrap();
    assert!(dir.path().join("app_3.log").exists());
}

#[test]
fn a_failed_chunk_leaves_no_file_behind() {
    let dir = tempfile::tempdir().unwrap();
    let w = FileWriter::new(config(false));
    let r = rendered(dir.path(), "app");
    assert!(w.write(&r, "c0ffee", &mut source(3, 5, Some(2))).is_err());
    assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
}

#[test]
fn max_file_size_splits_a_chunk_into_several_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(false);
    cfg.max_file_size = Some(100);
    let w = FileWriter::new(cfg);
    let written = w
        .write(
            &rendered(dir.path(), "app"),
            "c0ffee",
            &mut source(4, 5, None),
        )
        .unwrap();
    // Pieces are 75 bytes: a file is closed once it holds 100 bytes or more, so two each.
    assert_eq!(written.len(), 2);
    let total: usize = written
        .iter()
        .map(|p| fs::read_to_string(p).unwrap().lines().count())
        .sum();
    assert_eq!(total, 20);
}

#[test]
fn appends_grow_one_file_and_rotate_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(true);
    cfg.max_file_size = Some(250);
    let w = FileWriter::new(cfg);
    let r = rendered(dir.path(), "app");
    for _ in 0..4 {
        w.write(&r, "c0ffee", &mut source(1, 5, None)).unwrap();
    }
    assert_eq!(names(dir.path()), vec!["app.log", "app_1.log"]);
    let lines = |n: &str| {
        fs::read_to_string(dir.path().join(n))
            .unwrap()
            .lines()
            .count()
    };
    assert_eq!(lines("app.log") + lines("app_1.log"), 20);
    assert!(fs::metadata(dir.path().join("app.log")).unwrap().len() <= 250);
}

#[test]
fn a_failed_append_is_cut_back_to_the_length_before_the_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let w = FileWriter::new(config(true));
    let r = rendered(dir.path(), "app");
    w.write(&r, "c0ffee", &mut source(1, 3, None)).unwrap();
    let before = fs::read(dir.path().join("app.log")).unwrap();
    assert!(w.write(&r, "c0ffee", &mut source(5, 3, Some(3))).is_err());
    assert_eq!(fs::read(dir.path().join("app.log")).unwrap(), before);
    let other = rendered(dir.path(), "new");
    assert!(
        w.write(&other, "c0ffee", &mut source(5, 3, Some(1)))
            .is_err()
    );
    assert!(
        !dir.path().join("new.log").exists(),
        "a file the chunk created is removed"
    );
}

#[test]
fn a_torn_last_line_is_cut_before_the_first_append() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("app.log"), b"whole line\nhalf a li").unwrap();
    let w = FileWriter::new(config(true));
    w.write(
        &rendered(dir.path(), "app"),
        "c0ffee",
        &mut source(1, 1, None),
    )
    .unwrap();
    assert_eq!(
        fs::read_to_string(dir.path().join("app.log")).unwrap(),
        "whole line\npiece 0 line 0\n"
    );
}

#[test]
fn gzip_files_are_valid_and_appends_add_gzip_members() {
    let dir = tempfile::tempdir().unwrap();
    for append in [false, true] {
        let mut cfg = config(append);
        cfg.gzip = Some(6);
        let w = FileWriter::new(cfg);
        let r = rendered(dir.path(), if append { "a" } else { "n" });
        let mut written = Vec::new();
        for _ in 0..2 {
            written.extend(w.write(&r, "c0ffee", &mut source(3, 4, None)).unwrap());
        }
        let mut lines = 0;
        written.sort();
        written.dedup();
        for p in written {
            let mut text = String::new();
            flate2::read::MultiGzDecoder::new(File::open(p).unwrap())
                .read_to_string(&mut text)
                .unwrap();
            lines += text.lines().count();
        }
        assert_eq!(lines, 24, "append={append}");
    }
}

#[test]
fn symlink_points_at_the_last_file_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(false);
    cfg.symlink_path = Some(dir.path().join("current"));
    let w = FileWriter::new(cfg);
    let r = rendered(dir.path(), "app");
    w.write(&r, "a", &mut source(1, 1, None)).unwrap();
    w.write(&r, "b", &mut source(1, 1, None)).unwrap();
    assert_eq!(
        fs::read_link(dir.path().join("current")).unwrap(),
        dir.path().join("app_1.log")
    );
}

/// A file buffer holding one sealed chunk, for its notebook.
fn noted_buffer(dir: &Path) -> ferry_buffer::Buffer {
    let mut c = ferry_buffer::BufferConfig::file(dir);
    c.durability = ferry_buffer::Durability::OsCache;
    let (buffer, _) = ferry_buffer::Buffer::open(c, "b").unwrap();
    buffer
}

fn later() -> std::time::SystemTime {
    std::time::SystemTime::now() + std::time::Duration::from_secs(86_400)
}

/// Runs `f` as a crash would end it: a panic part way, nothing after it runs.
fn crash_during(f: impl FnOnce()) {
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    assert!(caught.is_err(), "the write was meant to be interrupted");
}

/// A source of `pieces` pieces of `lines` lines that panics (a crash) at piece `crash_at`.
fn crashing_source(
    pieces: usize,
    lines: usize,
    crash_at: usize,
) -> impl FnMut(&mut Vec<u8>) -> Result<bool, SinkError> {
    let mut inner = source(pieces, lines, None);
    let mut n = 0;
    move |buf: &mut Vec<u8>| {
        assert!(n != crash_at, "crash");
        n += 1;
        inner(buf)
    }
}

fn all_lines(dir: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for name in names(dir) {
        let path = dir.join(&name);
        if path.is_file() {
            v.extend(fs::read_to_string(path).unwrap().lines().map(String::from));
        }
    }
    v.sort();
    v
}

#[test]
fn an_append_a_crash_interrupted_is_cut_back_at_start_and_its_chunk_written_once() {
    let out = tempfile::tempdir().unwrap();
    let buf_dir = tempfile::tempdir().unwrap();
    let r = rendered(out.path(), "app");
    let target = r.path(0, true);
    fs::write(&target, "an earlier chunk\n").unwrap();
    let before = fs::metadata(&target).unwrap().len();
    {
        let buffer = noted_buffer(buf_dir.path());
        buffer.append(&ChunkKey::tag("t"), b"x", 1).unwrap();
        buffer.flush_all();
        let chunk = buffer.take(later()).unwrap();
        let notes = ChunkNotes::new(chunk.notebook(), &chunk.notes());
        let w = FileWriter::new(config(true));
        crash_during(|| {
            let _ = w.write_noted(&r, "c0ffee", &mut crashing_source(4, 50, 2), &notes);
        });
        drop(chunk);
    }
    assert!(
        fs::metadata(&target).unwrap().len() > before,
        "the crash left part of the chunk in the archive"
    );
    // The restart: the buffer is recovered and the output undoes before its first flush.
    let buffer = noted_buffer(buf_dir.path());
    let noted = buffer.noted_chunks();
    assert_eq!(noted.len(), 1);
    let c = &noted[0];
    let w = FileWriter::new(config(true));
    let notes = ChunkNotes::new(c.notebook.clone(), &c.notes);
    let undone = w.undo_interrupted(&r, &c.notes, &notes).unwrap();
    assert_eq!(undone.map(|(n, _)| n), Some(1));
    assert_eq!(fs::read_to_string(&target).unwrap(), "an earlier chunk\n");
    let again = &buffer.noted_chunks()[0];
    assert_eq!(
        w.undo_interrupted(&r, &again.notes, &notes).unwrap(),
        None,
        "an undo is done once"
    );
    let chunk = buffer.take(later()).unwrap();
    let notes = ChunkNotes::new(chunk.notebook(), &chunk.notes());
    w.write_noted(&r, "c0ffee", &mut source(4, 50, None), &notes)
        .unwrap();
    let text = fs::read_to_string(&target).unwrap();
    assert_eq!(
        text.lines().count(),
        1 + 4 * 50,
        "the chunk is in the archive once"
    );
    let done = chunk.notes();
    assert!(done.iter().any(|n| Code::WriteDone.is(n)));
    assert_eq!(
        w.undo_interrupted(&r, &done, &notes).unwrap(),
        None,
        "a chunk written whole is never cut back"
    );
}

#[test]
fn an_undo_never_cuts_what_a_later_chunk_appended() {
    let out = tempfile::tempdir().unwrap();
    let buf_dir = tempfile::tempdir().unwrap();
    let r = rendered(out.path(), "app");
    let buffer = noted_buffer(buf_dir.path());
    buffer.append(&ChunkKey::tag("a"), b"x", 1).unwrap();
    buffer.append(&ChunkKey::tag("b"), b"y", 1).unwrap();
    buffer.flush_all();
    let a = buffer.take(later()).unwrap();
    let b = buffer.take(later()).unwrap();
    let w = FileWriter::new(config(true));
    let an = ChunkNotes::new(a.notebook(), &a.notes());
    w.write_noted(&r, "a", &mut source(2, 10, None), &an)
        .unwrap();
    let bn = ChunkNotes::new(b.notebook(), &b.notes());
    w.write_noted(&r, "b", &mut source(3, 10, None), &bn)
        .unwrap();
    // A crash before the buffer deleted either chunk.
    drop((a, b));
    drop(buffer);
    let buffer = noted_buffer(buf_dir.path());
    let w = FileWriter::new(config(true));
    for c in buffer.noted_chunks() {
        let notes = ChunkNotes::new(c.notebook.clone(), &c.notes);
        assert_eq!(w.undo_interrupted(&r, &c.notes, &notes).unwrap(), None);
    }
    assert_eq!(all_lines(out.path()).len(), 50);
}

#[test]
fn parts_published_before_a_crash_are_not_written_again() {
    let out = tempfile::tempdir().unwrap();
    let buf_dir = tempfile::tempdir().unwrap();
    let r = rendered(out.path(), "app");
    let mut cfg = config(false);
    cfg.max_file_size = Some(100);
    {
        let buffer = noted_buffer(buf_dir.path());
        buffer.append(&ChunkKey::tag("t"), b"x", 1).unwrap();
        buffer.flush_all();
        let chunk = buffer.take(later()).unwrap();
        let notes = ChunkNotes::new(chunk.notebook(), &chunk.notes());
        let w = FileWriter::new(cfg.clone());
        crash_during(|| {
            let _ = w.write_noted(&r, "c0ffee", &mut crashing_source(5, 10, 3), &notes);
        });
    }
    assert_eq!(
        all_lines(out.path()).len(),
        30,
        "three parts were published"
    );
    let buffer = noted_buffer(buf_dir.path());
    let chunk = buffer.take(later()).unwrap();
    let notes = ChunkNotes::new(chunk.notebook(), &chunk.notes());
    assert_eq!(notes.published, 3);
    let w = FileWriter::new(cfg);
    let written = w
        .write_noted(&r, "c0ffee", &mut source(5, 10, None), &notes)
        .unwrap();
    assert_eq!(written.len(), 2, "only the parts not published before");
    let lines = all_lines(out.path());
    let mut unique = lines.clone();
    unique.dedup();
    assert_eq!(lines.len(), 50);
    assert_eq!(unique.len(), 50, "no line twice");
}

/// Writes `sources` as one group of chunks named `c0` … into `r`'s files, with notes from
/// `notes`.
fn write_group_of(
    w: &FileWriter,
    r: &Rendered,
    sources: &mut [Box<NextPiece<'static>>],
    notes: &[ChunkNotes],
) -> Vec<Written> {
    let ids: Vec<String> = (0..sources.len()).map(|i| format!("c{i}")).collect();
    let items = sources
        .iter_mut()
        .zip(&ids)
        .zip(notes)
        .map(|((next, id), notes)| GroupItem {
            rendered: r,
            chunk_id: id,
            next: next.as_mut(),
            notes,
        })
        .collect();
    w.write_group(items)
}

fn sources(n: usize, fail: Option<usize>) -> Vec<Box<NextPiece<'static>>> {
    (0..n)
        .map(|i| {
            let fail_at = (Some(i) == fail).then_some(1);
            Box::new(source(2, 5, fail_at)) as Box<NextPiece<'static>>
        })
        .collect()
}

#[test]
fn appended_chunks_of_a_group_share_one_sync_of_their_file() {
    let dir = tempfile::tempdir().unwrap();
    let r = rendered(dir.path(), "app");
    let w = FileWriter::new(config(true));
    let notes: Vec<ChunkNotes> = (0..8).map(|_| ChunkNotes::none()).collect();
    let written = write_group_of(&w, &r, &mut sources(8, None), &notes);
    assert!(written.iter().all(Result::is_ok));
    assert_eq!(all_lines(dir.path()).len(), 8 * 10);
    // One sync of the file, one of the directory that gained it.
    assert_eq!(w.syncs(), 2);
    // Written one at a time, the same chunks cost a sync each.
    let one_by_one = FileWriter::new(config(true));
    for mut s in sources(8, None) {
        one_by_one.write(&r, "c", s.as_mut()).unwrap();
    }
    assert_eq!(one_by_one.syncs(), 8);
    assert_eq!(all_lines(dir.path()).len(), 16 * 10);
}

#[test]
fn new_files_of_a_group_share_one_sync_of_their_directory() {
    let dir = tempfile::tempdir().unwrap();
    let r = rendered(dir.path(), "app");
    let w = FileWriter::new(config(false));
    let notes: Vec<ChunkNotes> = (0..8).map(|_| ChunkNotes::none()).collect();
    let written = write_group_of(&w, &r, &mut sources(8, None), &notes);
    let files: Vec<PathBuf> = written.into_iter().flat_map(Result::unwrap).collect();
    assert_eq!(files.len(), 8, "a file per chunk");
    assert_eq!(names(dir.path()).len(), 8, "no temporary file is left");
    // Each file's data once, the directory once (one at a time: 16).
    assert_eq!(w.syncs(), 9);
    let one_by_one = FileWriter::new(config(false));
    for mut s in sources(8, None) {
        one_by_one.write(&r, "c", s.as_mut()).unwrap();
    }
    assert_eq!(one_by_one.syncs(), 16);
}

#[test]
fn a_chunk_that_fails_in_a_group_leaves_nothing_and_the_others_are_written() {
    for append in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let r = rendered(dir.path(), "app");
        let w = FileWriter::new(config(append));
        let notes: Vec<ChunkNotes> = (0..5).map(|_| ChunkNotes::none()).collect();
        let written = write_group_of(&w, &r, &mut sources(5, Some(2)), &notes);
        let ok: Vec<bool> = written.iter().map(Result::is_ok).collect();
        assert_eq!(ok, [true, true, false, true, true], "append {append}");
        let lines = all_lines(dir.path());
        assert_eq!(
            lines.len(),
            4 * 10,
            "append {append}: the failed chunk left nothing"
        );
        assert!(
            names(dir.path()).iter().all(|n| !n.ends_with(".ferry-tmp")),
            "append {append}: no temporary file"
        );
    }
}

#[test]
fn a_crash_before_a_groups_sync_cuts_back_all_of_its_chunks_and_each_is_written_once() {
    let out = tempfile::tempdir().unwrap();
    let buf_dir = tempfile::tempdir().unwrap();
    let r = rendered(out.path(), "app");
    let target = r.path(0, true);
    fs::write(&target, "an earlier chunk\n").unwrap();
    {
        let buffer = noted_buffer(buf_dir.path());
        for t in ["a", "b", "c"] {
            buffer.append(&ChunkKey::tag(t), b"x", 1).unwrap();
        }
        buffer.flush_all();
        let chunks: Vec<_> = (0..3).map(|_| buffer.take(later()).unwrap()).collect();
        let notes: Vec<ChunkNotes> = chunks
            .iter()
            .map(|c| ChunkNotes::new(c.notebook(), &c.notes()))
            .collect();
        let w = FileWriter::new(config(true));
        let mut srcs: Vec<Box<NextPiece<'static>>> = vec![
            Box::new(source(2, 10, None)),
            Box::new(source(2, 10, None)),
            Box::new(crashing_source(4, 10, 2)),
        ];
        crash_during(|| {
            let _ = write_group_of(&w, &r, &mut srcs, &notes);
        });
        drop(chunks);
    }
    assert!(
        all_lines(out.path()).len() > 1,
        "the crash left appends behind"
    );
    // The restart: every chunk of the group is undone, back to before the first of them.
    let buffer = noted_buffer(buf_dir.path());
    let w = FileWriter::new(config(true));
    for c in buffer.noted_chunks() {
        let notes = ChunkNotes::new(c.notebook.clone(), &c.notes);
        w.undo_interrupted(&r, &c.notes, &notes).unwrap();
    }
    assert_eq!(fs::read_to_string(&target).unwrap(), "an earlier chunk\n");
    let chunks: Vec<_> = (0..3).map(|_| buffer.take(later()).unwrap()).collect();
    let notes: Vec<ChunkNotes> = chunks
        .iter()
        .map(|c| ChunkNotes::new(c.notebook(), &c.notes()))
        .collect();
    let mut srcs: Vec<Box<NextPiece<'static>>> = vec![
        Box::new(source(2, 10, None)),
        Box::new(source(2, 10, None)),
        Box::new(source(4, 10, None)),
    ];
    let written = write_group_of(&w, &r, &mut srcs, &notes);
    assert!(written.iter().all(Result::is_ok));
    assert_eq!(
        all_lines(out.path()).len(),
        1 + 20 + 20 + 40,
        "each chunk once"
    );
    for c in &chunks {
        assert!(c.notes().iter().any(|n| Code::WriteDone.is(n)));
    }
}

#[test]
fn a_chunk_of_a_group_whose_done_note_was_lost_is_cut_back_alone() {
    let out = tempfile::tempdir().unwrap();
    let buf_dir = tempfile::tempdir().unwrap();
    let r = rendered(out.path(), "app");
    let buffer = noted_buffer(buf_dir.path());
    for t in ["a", "b"] {
        buffer.append(&ChunkKey::tag(t), b"x", 1).unwrap();
    }
    buffer.flush_all();
    let chunks: Vec<_> = (0..2).map(|_| buffer.take(later()).unwrap()).collect();
    let notes: Vec<ChunkNotes> = chunks
        .iter()
        .map(|c| ChunkNotes::new(c.notebook(), &c.notes()))
        .collect();
    let w = FileWriter::new(config(true));
    let mut srcs: Vec<Box<NextPiece<'static>>> =
        vec![Box::new(source(2, 10, None)), Box::new(source(3, 10, None))];
    assert!(
        write_group_of(&w, &r, &mut srcs, &notes)
            .iter()
            .all(Result::is_ok)
    );
    assert_eq!(all_lines(out.path()).len(), 50);
    // A crash between the two done notes: the second chunk's note never reached the disk.
    let second = &chunks[1];
    let without_done: Vec<_> = second
        .notes()
        .into_iter()
        .filter(|n| !Code::WriteDone.is(n))
        .collect();
    let w = FileWriter::new(config(true));
    let undone = w
        .undo_interrupted(&r, &without_done, &ChunkNotes::none())
        .unwrap();
    assert_eq!(undone.map(|(n, _)| n), Some(1));
    // Only the second chunk's 30 lines are cut: the first, noted done, keeps its 20.
    let lines = all_lines(out.path());
    assert_eq!(lines.len(), 20, "{lines:?}");
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("piece 0 ") || l.starts_with("piece 1 "))
    );
}
