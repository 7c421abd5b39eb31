//! End-to-end tests of the `quiver` binary: demo, info (table and JSON),
//! verify on a clean store, on a damaged one, and on a directory that is not
//! a store; search, export and import beside an open writer; an import
//! stopped by Ctrl-C or killed with SIGKILL, then resumed. They run the
//! built binary, as a user would.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Output};

fn quiver(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quiver")).args(args).output().expect("the quiver binary runs")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// Proves the whole user journey: the demo builds and checks a store and
// prints its summary, info describes it (the JSON is well formed), verify
// passes, then finds a flipped payload byte naming the data file and the
// record's offset (exit 1).
#[test]
fn demo_info_verify_and_damage() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("demo");
    let d = dir.to_str().expect("utf-8 temp path");

    let out = quiver(&["demo", "--count", "2000", "--dim", "16", "--reads", "1000", "--dir", d]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s = stdout(&out);
    for line in
        ["dir ", "vectors          2,000 x 16 f32", "import ", "vectors/s", "MB/s", "reopen ", "verify ", "ns/op"]
    {
        assert!(s.contains(line), "demo output lacks {line:?}:\n{}", text(&out));
    }
    assert!(s.contains("snapshot loaded, 2,000 entries"), "{}", text(&out));
    assert!(s.contains(&format!("quiver info {d}")) && s.contains(&format!("quiver verify {d}")), "{}", text(&out));

    let out = quiver(&["info", d]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s = stdout(&out);
    assert!(s.contains("dimension 16, element f32"), "{}", text(&out));
    assert!(s.contains("2,000 entries"), "{}", text(&out));

    let out = quiver(&["info", d, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json = stdout(&out);
    let value = json::check(json.trim()).unwrap_or_else(|e| panic!("invalid JSON ({e}):\n{json}"));
    json::assert_documented(&value, "info");
    assert_eq!((value["dimension"].as_u64(), value["element"].as_str()), (Some(16), Some("f32")));
    assert_eq!((value["snapshot_entries"].as_u64(), value["checkpoint_end_slot"].as_u64()), (Some(2000), Some(2000)));

    let out = quiver(&["verify", d]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(stdout(&out).contains("records checked  2,000"), "{}", text(&out));
    assert!(stdout(&out).contains("problems         0"), "{}", text(&out));

    // Flip a payload byte of slot 7 (id 7, live; covered by the snapshot,
    // so open succeeds and only verify can see the damage). A record of 16
    // f32 is a 64-byte header plus 64 bytes of payload, after a 4096-byte
    // header page (docs/FORMAT.md).
    let data = dir.join("data-00000001.qvd");
    let record_offset = 4096 + 7 * 128u64;
    let file = OpenOptions::new().read(true).write(true).open(&data).expect("open the data file");
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, record_offset + 64 + 5).expect("read");
    byte[0] ^= 0x01;
    file.write_all_at(&byte, record_offset + 64 + 5).expect("write");
    drop(file);

    let out = quiver(&["verify", d]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let s = stdout(&out);
    let expected = format!("{} at byte offset {record_offset}", data.display());
    assert!(s.contains(&expected), "verify output lacks {expected:?}:\n{}", text(&out));

    let out = quiver(&["verify", d, "--json"]);
    assert_eq!(out.status.code(), Some(1), "the exit code does not depend on --json: {}", text(&out));
    let value = json::check(stdout(&out).trim()).unwrap_or_else(|e| panic!("invalid JSON ({e}):\n{}", text(&out)));
    json::assert_documented(&value, "verify");
    json::assert_documented(&value["problems"][0], "verify.problems[]");
    assert_eq!((value["clean"].as_bool(), value["problems"][0]["offset"].as_u64()), (Some(false), Some(record_offset)));

    // Compact, as JSON, on a clean store with dead records.
    let clean = tmp_clean_store();
    let out = quiver(&["compact", clean.1.to_str().expect("utf-8"), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let value = json::check(stdout(&out).trim()).unwrap_or_else(|e| panic!("invalid JSON ({e}):\n{}", text(&out)));
    json::assert_documented(&value, "compact");
    assert_eq!((value["generation"].as_u64(), value["live_records"].as_u64()), (Some(2), Some(5)));
}

/// A store of ten vectors, five of them deleted, closed.
fn tmp_clean_store() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("clean");
    let store: quiver::VectorStore<f32> = quiver::VectorStore::open(&dir, 2).expect("open");
    for id in 0..10u64 {
        store.store(id, &[id as f32, 1.0]).expect("store");
    }
    for id in 0..5u64 {
        store.delete(id).expect("delete");
    }
    store.close().expect("close");
    (tmp, dir)
}

// Proves verify and info on a directory that is not a store fail with exit
// code 2 and a sentence, and create nothing.
#[test]
fn not_a_store_is_an_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("notes.txt"), "not a store").expect("write");
    let d = tmp.path().to_str().expect("utf-8 temp path");
    for args in [&["verify", d][..], &["info", d][..]] {
        let out = quiver(args);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("is not a Quiver store"), "{}", text(&out));
    }
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let out = quiver(&["verify", empty.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(std::fs::read_dir(&empty).expect("list").count(), 0, "verify created files");
    assert_eq!(std::fs::read_dir(tmp.path()).expect("list").count(), 2);
}

// Proves info works while another process holds the store open (it takes no
// lock), and verify, which must open the store, fails with exit code 2 and
// the Locked sentence.
#[test]
fn info_works_and_verify_is_refused_while_the_store_is_open() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("open");
    let store: quiver::VectorStore<quiver::f16> = quiver::VectorStore::open(&dir, 3).expect("open");
    store.store(1, &[quiver::f16::from_f32(0.5); 3]).expect("store");
    let d = dir.to_str().expect("utf-8 temp path");

    let out = quiver(&["info", d]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(stdout(&out).contains("dimension 3, element f16"), "{}", text(&out));

    let out = quiver(&["verify", d]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is locked by another writer"), "{}", text(&out));

    store.close().expect("close");
    let out = quiver(&["verify", d]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(stdout(&out).contains("(3 x f16)") && stdout(&out).contains("live vectors     1"), "{}", text(&out));
}

// Proves search runs beside an open writer (it follows the store
// read-only): by a stored id (whose own hit comes first), by a text query
// file as a table, by a raw .f32 file as well-formed JSON, that it sees
// writes made after an earlier search, and that a wrong-length query is an
// error (exit 2) naming both lengths.
#[test]
fn search_beside_an_open_writer() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("open");
    let store: quiver::VectorStore<f32> = quiver::VectorStore::open(&dir, 3).expect("open");
    let batch: Vec<(u64, Vec<f32>)> = (1..=20u64).map(|id| (id, vec![id as f32, 1.0, 0.0])).collect();
    let refs: Vec<(u64, &[f32])> = batch.iter().map(|(id, v)| (*id, &v[..])).collect();
    store.store_batch(&refs).expect("store");
    let d = dir.to_str().expect("utf-8 temp path");

    let out = quiver(&["search", d, "--id", "7", "--k", "3", "--metric", "l2"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rows: Vec<Vec<String>> =
        stdout(&out).lines().skip(1).map(|l| l.split_whitespace().map(str::to_string).collect()).collect();
    assert_eq!(rows, [["1", "7", "0"], ["2", "6", "1"], ["3", "8", "1"]], "{}", text(&out));

    let query = tmp.path().join("q.txt");
    std::fs::write(&query, "[0, 1, 0]").expect("write query");
    let q = query.to_str().expect("utf-8");
    store.store(99, &[0.0, 5.0, 0.0]).expect("store after");
    let out = quiver(&["search", d, "--query", q, "--k", "2", "--metric", "cosine"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let first = stdout(&out).lines().nth(1).map(str::to_string).unwrap_or_default();
    assert_eq!(first.split_whitespace().collect::<Vec<_>>(), ["1", "99", "1"], "{}", text(&out));

    let raw = tmp.path().join("q.f32");
    std::fs::write(&raw, [1.0f32, 0.0, 0.0].iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()).expect("write");
    let out = quiver(&["search", d, "--query", raw.to_str().expect("utf-8"), "--k", "2", "--metric", "dot", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json = stdout(&out);
    let value = json::check(json.trim()).unwrap_or_else(|e| panic!("invalid JSON ({e}):\n{json}"));
    json::assert_documented(&value, "search");
    json::assert_documented(&value["hits"][0], "search.hits[]");
    assert_eq!(value["metric"], "dot");
    assert_eq!((value["hits"][0]["id"].as_u64(), value["hits"][0]["score"].as_f64()), (Some(20), Some(20.0)));
    assert_eq!(value["hits"][1]["id"].as_u64(), Some(19));

    std::fs::write(&query, "1 2").expect("write short query");
    let out = quiver(&["search", d, "--query", q]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the query has 2 elements"), "{}", text(&out));
    store.close().expect("close");
}

// Proves export and import end to end: a consistent export beside an open
// writer (the writes after it are not in it), an import that creates the
// store from the file's shape and gives the same vectors, ids exported as a
// column, a torn file refused with its offset and how to resume, and a file
// of another shape refused before anything is written.
#[test]
fn export_and_import_beside_an_open_writer() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("src");
    let store: quiver::VectorStore<f32> = quiver::VectorStore::open(&dir, 4).expect("open");
    let batch: Vec<(u64, Vec<f32>)> = (0..50u64).map(|id| (id, vec![id as f32, 0.5, -1.0, 2.0])).collect();
    let refs: Vec<(u64, &[f32])> = batch.iter().map(|(id, v)| (*id, &v[..])).collect();
    store.store_batch(&refs).expect("store");
    let (d, file) = (dir.to_str().expect("utf-8"), tmp.path().join("all.npy"));
    let f = file.to_str().expect("utf-8");
    let out = quiver(&["export", d, f, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let value = json::check(stdout(&out).trim()).unwrap_or_else(|e| panic!("invalid JSON ({e}):\n{}", text(&out)));
    json::assert_documented(&value, "export");
    assert_eq!(value["rows"].as_u64(), Some(50));
    store.store(50, &[9.0; 4]).expect("a write after the export");

    let copy = tmp.path().join("copy");
    let c = copy.to_str().expect("utf-8");
    let out = quiver(&["import", c, f]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(stdout(&out).contains("imported 50 vectors of 4 f32"), "{}", text(&out));
    let imported: quiver::VectorStore<f32> = quiver::VectorStore::open(&copy, 4).expect("reopen the copy");
    assert_eq!((imported.len(), imported.retrieve(49)), (50, Some(vec![49.0, 0.5, -1.0, 2.0])));
    drop(imported);

    let ids = tmp.path().join("ids.npy");
    let out = quiver(&["export", d, ids.to_str().expect("utf-8"), "--ids-only", "--where", "10..=12"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let bytes = std::fs::read(&ids).expect("ids file");
    let tail: Vec<u64> =
        bytes[bytes.len() - 24..].chunks(8).map(|b| u64::from_le_bytes(b.try_into().expect("8"))).collect();
    assert_eq!(tail, [10, 11, 12]);

    let parquet = tmp.path().join("part.parquet");
    let out = quiver(&["export", d, parquet.to_str().expect("utf-8"), "--where", "10..20"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let from_parquet = tmp.path().join("from-parquet");
    let out = quiver(&["import", from_parquet.to_str().expect("utf-8"), parquet.to_str().expect("utf-8"), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let value = json::check(stdout(&out).trim()).unwrap_or_else(|e| panic!("invalid JSON ({e}):\n{}", text(&out)));
    json::assert_documented(&value, "import");
    assert_eq!(value["rows"].as_u64(), Some(10));
    let table: quiver::VectorStore<f32> = quiver::VectorStore::open(&from_parquet, 4).expect("reopen");
    let mut ids = table.ids();
    ids.sort_unstable();
    assert_eq!(ids, (10..20).collect::<Vec<u64>>(), "a table keeps its ids");
    assert_eq!(table.retrieve(15), Some(vec![15.0, 0.5, -1.0, 2.0]));
    drop(table);

    let fvecs = tmp.path().join("part.fvecs");
    let out = quiver(&["export", d, fvecs.to_str().expect("utf-8"), "--where", "..10"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut torn = std::fs::read(&fvecs).expect("fvecs");
    torn.truncate(7 * 20 + 3);
    let torn_path = tmp.path().join("torn.fvecs");
    std::fs::write(&torn_path, &torn).expect("write torn");
    let fresh = tmp.path().join("fresh");
    let out = quiver(&["import", fresh.to_str().expect("utf-8"), torn_path.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("malformed at byte offset 140") && err.contains("--skip-rows 0"), "{}", text(&out));

    let wide = tmp.path().join("wide.fvecs");
    std::fs::write(
        &wide,
        [
            5i32.to_le_bytes(),
            1f32.to_le_bytes(),
            1f32.to_le_bytes(),
            1f32.to_le_bytes(),
            1f32.to_le_bytes(),
            1f32.to_le_bytes(),
        ]
        .concat(),
    )
    .expect("write");
    let out = quiver(&["import", c, wide.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was written"), "{}", text(&out));
    store.close().expect("close");
}

/// Requires `dir` to be as it was before a refused import: absent if it
/// was, and otherwise holding exactly the entries it held.
fn assert_untouched(dir: &Path, before: Option<&[String]>, out: &Output) {
    let now: Option<Vec<String>> = std::fs::read_dir(dir)
        .ok()
        .map(|d| d.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect());
    assert_eq!(now.as_deref(), before, "a refused import changed {}:\n{}", dir.display(), text(out));
}

/// A closed store of `rows` vectors of 4 f32 under ids `id(row)`, element
/// `j` of row `r` of the bits `element_bits(r, j)` (NaN payloads included).
fn small_store(dir: &Path, rows: u64, id: impl Fn(u64) -> u64) {
    let store: quiver::VectorStore<f32> = quiver::VectorStore::open(dir, 4).expect("open");
    let batch: Vec<(u64, Vec<f32>)> =
        (0..rows).map(|r| (id(r), (0..4).map(|j| f32::from_bits(element_bits(r, j))).collect())).collect();
    let refs: Vec<(u64, &[f32])> = batch.iter().map(|(id, v)| (*id, &v[..])).collect();
    store.store_batch(&refs).expect("store");
    store.close().expect("close");
}

// Proves an import refused for what the file and the flags say (a first id
// for a table that carries its own ids, ids that overflow u64) is refused
// before the store is created: a missing directory stays missing, an empty
// one stays empty, and no resume hint is printed, since nothing was begun.
#[test]
fn a_refused_import_creates_no_store() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    small_store(&src, 5, |r| r);
    let s = src.to_str().expect("utf-8");
    let (parquet, npy) = (tmp.path().join("t.parquet"), tmp.path().join("v.npy"));
    for file in [&parquet, &npy] {
        let out = quiver(&["export", s, file.to_str().expect("utf-8")]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let cases: [(&Path, &str, &str); 2] =
        [(&parquet, "5", "carries its own ids"), (&npy, "18446744073709551615", "overflow u64")];
    for (file, first_id, why) in cases {
        for (dir, before) in [(tmp.path().join("new"), None), (empty.clone(), Some(&[][..]))] {
            let (d, f) = (dir.to_str().expect("utf-8"), file.to_str().expect("utf-8"));
            let out = quiver(&["import", d, f, "--first-id", first_id]);
            assert_eq!(out.status.code(), Some(2), "{}", text(&out));
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(why) && err.contains("nothing was written"), "{}", text(&out));
            assert!(!err.contains("resume with"), "a refusal is not an interrupted import: {}", text(&out));
            assert_untouched(&dir, before, &out);
        }
    }
}

/// Every id of the store at `dir` (4 f32) with its vector's bits, in id
/// order.
fn store_bits(dir: &Path) -> Vec<(u64, Vec<u32>)> {
    let store: quiver::VectorStore<f32> = quiver::VectorStore::open(dir, 4).expect("reopen");
    let all = store.snapshot().range(..).map(|(id, v)| (id, v.iter().map(|x| x.to_bits()).collect())).collect();
    store.close().expect("close");
    all
}

// Proves an fvecs file and the ids file `export --ids-only` writes beside
// it import back as the same store, non-contiguous ids and every bit; and
// that an import stopped by damage prints `--skip-rows R --ids FILE`, which
// (once the file is whole) completes it. The file is 70,000 rows of 16
// bytes: a 1 MiB batch is 65,536 rows, so the damage stops the second.
#[test]
fn an_ids_file_gives_an_fvecs_import_its_ids_and_resumes_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    let rows = 70_000u64;
    small_store(&src, rows, |r| 1000 + 3 * r + r % 5);
    let (s, fvecs, ids) = (src.to_str().expect("utf-8"), tmp.path().join("v.fvecs"), tmp.path().join("my ids.npy"));
    let (f, i) = (fvecs.to_str().expect("utf-8"), ids.to_str().expect("utf-8"));
    for args in [&["export", s, f][..], &["export", s, i, "--ids-only"][..]] {
        let out = quiver(args);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let copy = tmp.path().join("copy");
    let out = quiver(&["import", copy.to_str().expect("utf-8"), f, "--ids", i]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(stdout(&out).contains("imported 70,000 vectors of 4 f32 (ids from"), "{}", text(&out));
    let want = store_bits(&src);
    assert!(store_bits(&copy) == want, "the copy is not the source, id for id and bit for bit");

    // The last row torn: the file has 69,999 whole rows, so 69,999 ids.
    let last_id = want[rows as usize - 1].0;
    let short_ids = tmp.path().join("short ids.npy");
    let out =
        quiver(&["export", s, short_ids.to_str().expect("utf-8"), "--ids-only", "--where", &format!("..{last_id}")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let whole = std::fs::read(&fvecs).expect("fvecs");
    let torn = tmp.path().join("torn.fvecs");
    std::fs::write(&torn, &whole[..whole.len() - 20 + 3]).expect("write torn");
    let (t, si) = (torn.to_str().expect("utf-8"), short_ids.to_str().expect("utf-8"));
    let resumed = tmp.path().join("resumed");
    let r = resumed.to_str().expect("utf-8");
    let out = quiver(&["import", r, t, "--ids", si, "--batch-mib", "1"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    // The path holds a space, so the hint quotes it as one shell word.
    let resume = format!("resume with --skip-rows 65536 --ids '{si}'");
    assert!(err.contains("malformed at byte offset") && err.contains(&resume), "stderr lacks {resume:?}:\n{err}");
    assert!(store_bits(&resumed) == want[..65_536], "not the whole first batch and nothing of the second");

    std::fs::write(&torn, &whole[..whole.len() - 20]).expect("mend the file");
    let out = quiver(&["import", r, t, "--batch-mib", "1", "--skip-rows", "65536", "--ids", si]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(store_bits(&resumed) == want[..rows as usize - 1], "the resume did not complete the file");
}

// Proves `--ids` that cannot pair with the file is refused before anything
// is written, into a new directory or an existing store: an ids file of
// another length, a table (whose rows carry their own ids), and
// `--first-id` beside it (a usage error).
#[test]
fn ids_that_cannot_pair_with_the_file_write_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    small_store(&src, 10, |r| 2 * r);
    let s = src.to_str().expect("utf-8");
    let (fvecs, parquet, ids) = (tmp.path().join("v.fvecs"), tmp.path().join("t.parquet"), tmp.path().join("ids.npy"));
    let (f, p, i) = (fvecs.to_str().expect("utf-8"), parquet.to_str().expect("utf-8"), ids.to_str().expect("utf-8"));
    for args in [&["export", s, f][..], &["export", s, p][..], &["export", s, i, "--ids-only", "--where", "..10"][..]] {
        let out = quiver(args);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let existing = tmp.path().join("existing");
    small_store(&existing, 3, |r| 100 + r);
    let listing: Vec<String> = std::fs::read_dir(&existing)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    let before = store_bits(&existing);
    let cases: [(&str, &str); 2] = [(f, "5 ids for a fvecs file of 10 rows"), (p, "parquet table, whose rows carry")];
    for (file, why) in cases {
        for (dir, was) in [(tmp.path().join("new"), None), (existing.clone(), Some(&listing[..]))] {
            let out = quiver(&["import", dir.to_str().expect("utf-8"), file, "--ids", i]);
            assert_eq!(out.status.code(), Some(2), "{}", text(&out));
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(why) && err.contains("nothing was written"), "{}", text(&out));
            assert_untouched(&dir, was, &out);
        }
    }
    assert!(store_bits(&existing) == before, "the existing store changed");
    let new = tmp.path().join("new");
    let out = quiver(&["import", new.to_str().expect("utf-8"), f, "--ids", i, "--first-id", "3"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"), "{}", text(&out));
    assert_untouched(&new, None, &out);
}

/// Writes a Parquet file `key: uint64, emb: fixed_size_list<f32, 4>`
/// (another writer's names), the rows of [`small_store`] under ids
/// `5 * row + 1`, the vector of row `null_at` null if given.
fn write_renamed_parquet(path: &Path, rows: u64, null_at: Option<u64>) {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, FixedSizeListArray, Float32Array, RecordBatch, UInt64Array};
    use arrow_schema::{DataType, Field, Schema};
    let item = Arc::new(Field::new("item", DataType::Float32, true));
    let values =
        Float32Array::from_iter_values((0..rows).flat_map(|r| (0..4).map(move |j| f32::from_bits(element_bits(r, j)))));
    let nulls = null_at.map(|at| arrow_buffer::NullBuffer::from_iter((0..rows).map(|r| r != at)));
    let emb = FixedSizeListArray::try_new(Arc::clone(&item), 4, Arc::new(values), nulls).expect("list");
    let schema = Arc::new(Schema::new(vec![
        Field::new("key", DataType::UInt64, false),
        Field::new("emb", DataType::FixedSizeList(item, 4), true),
    ]));
    let key: ArrayRef = Arc::new(UInt64Array::from_iter_values((0..rows).map(|r| 5 * r + 1)));
    let batch = RecordBatch::try_new(Arc::clone(&schema), vec![key, Arc::new(emb)]).expect("batch");
    let mut writer = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path).expect("create"), schema, None)
        .expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
}

// Proves a Parquet table whose columns are `key` and `emb` imports with
// `--id-column key --vector-column emb`: its ids, bit for bit, as the
// documented JSON; an import stopped by a bad row prints a resume hint
// that names the columns, and completes the table; a named column that is
// missing, or named for a file without columns, is refused with nothing
// written.
#[test]
fn a_table_with_other_column_names_imports_by_name() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let rows = 70_000u64;
    let (table, bad) = (tmp.path().join("renamed.parquet"), tmp.path().join("bad.parquet"));
    write_renamed_parquet(&table, rows, None);
    write_renamed_parquet(&bad, rows, Some(69_000));
    let expected = tmp.path().join("expected");
    small_store(&expected, rows, |r| 5 * r + 1);
    let want = store_bits(&expected);

    let (t, b) = (table.to_str().expect("utf-8"), bad.to_str().expect("utf-8"));
    let copy = tmp.path().join("copy");
    let c = copy.to_str().expect("utf-8");
    let out = quiver(&["import", c, t, "--id-column", "key", "--vector-column", "emb", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let value = json::check(stdout(&out).trim()).unwrap_or_else(|e| panic!("invalid JSON ({e}):\n{}", text(&out)));
    json::assert_documented(&value, "import");
    assert_eq!(value["rows"].as_u64(), Some(rows));
    assert!(store_bits(&copy) == want, "not the table's ids and vectors, bit for bit");

    let resumed = tmp.path().join("resumed");
    let r = resumed.to_str().expect("utf-8");
    let out = quiver(&["import", r, b, "--batch-mib", "1", "--id-column", "key", "--vector-column", "emb"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let resume = "resume with --skip-rows 65536 --id-column key --vector-column emb";
    assert!(err.contains("row 69000: the vector is null") && err.contains(resume), "stderr lacks {resume:?}:\n{err}");
    assert!(store_bits(&resumed) == want[..65_536], "not the whole first batch and nothing of the second");
    // The hint is the context of the error: the cause follows it after ": ".
    let hint = err.split("resume with ").nth(1).and_then(|rest| rest.split(": ").next()).expect("flags");
    let flags: Vec<&str> = hint.split_whitespace().collect();
    let mut args = vec!["import", r, t, "--batch-mib", "1"];
    args.extend(&flags);
    let out = quiver(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(store_bits(&resumed) == want, "the hinted resume did not complete the table");

    let fvecs = tmp.path().join("v.fvecs");
    let out = quiver(&["export", expected.to_str().expect("utf-8"), fvecs.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let new = tmp.path().join("new");
    let n = new.to_str().expect("utf-8");
    let refusals: [(&[&str], &str); 3] = [
        (&[t, "--id-column", "nope"], "the id column `nope` is not in the schema [key: UInt64, emb: "),
        (&[t, "--vector-column", "key"], "the vector column `key` is of type UInt64"),
        (&[fvecs.to_str().expect("utf-8"), "--id-column", "key"], "a fvecs file has no columns"),
    ];
    for (file_and_flags, why) in refusals {
        let mut args = vec!["import", n];
        args.extend(file_and_flags);
        let out = quiver(&args);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why) && err.contains("nothing was written"), "{}", text(&out));
        assert_untouched(&new, None, &out);
    }
}

// Proves the demo refuses to overwrite a non-empty directory that is not a
// Quiver store, leaving it as it was.
#[test]
fn demo_refuses_a_foreign_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let keep = tmp.path().join("keep.txt");
    std::fs::write(&keep, "precious").expect("write");
    let out = quiver(&["demo", "--count", "10", "--dim", "4", "--dir", tmp.path().to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to overwrite"), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(Path::new(&keep)).expect("still there"), "precious");
}

/// Rows of the interrupted-import tests: 256 f32 each (1 KiB), so a
/// `--batch-mib 1` batch is [`BATCH_ROWS`] rows and the file is 32 batches.
const DIM: usize = 256;
const ROWS: u64 = 32 * BATCH_ROWS;
const BATCH_ROWS: u64 = 1024;

/// The bits of element `j` of file row `row`: every 32-bit pattern is
/// possible (NaN payloads, infinities, subnormals), so a lossy copy shows.
fn element_bits(row: u64, j: usize) -> u32 {
    let mut x = (row * DIM as u64 + j as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (x ^ (x >> 31)) as u32
}

/// Writes the [`ROWS`]-row fvecs file the interrupted-import tests import.
fn write_big_fvecs(path: &Path) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create the fvecs file"));
    for row in 0..ROWS {
        out.write_all(&(DIM as i32).to_le_bytes()).expect("write");
        for j in 0..DIM {
            out.write_all(&element_bits(row, j).to_le_bytes()).expect("write");
        }
    }
    out.flush().expect("flush");
}

/// Reopens the store at `dir` and requires it to hold exactly file rows
/// `0..rows` under ids `first_id + row`, bit for bit.
fn assert_rows_stored(dir: &Path, first_id: u64, rows: u64) {
    let store: quiver::VectorStore<f32> = quiver::VectorStore::open(dir, DIM).expect("reopen the store");
    let snapshot = store.snapshot();
    let mut expected_row = 0u64;
    for (id, v) in snapshot.range(..) {
        assert_eq!(id, first_id + expected_row, "ids are not first_id + 0..{rows} with none missing");
        let bits: Vec<u32> = v.iter().map(|x| x.to_bits()).collect();
        let want: Vec<u32> = (0..DIM).map(|j| element_bits(expected_row, j)).collect();
        assert!(bits == want, "id {id} (file row {expected_row}) is not bit-exact");
        expected_row += 1;
    }
    assert_eq!(expected_row, rows, "the store holds {expected_row} rows, not {rows}");
    store.close().expect("close");
}

/// `kill -<signal> <pid>` (std can only send SIGKILL).
fn send(signal: &str, child: &std::process::Child) {
    let status = Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status().expect("run kill");
    assert!(status.success(), "kill -{signal} failed");
}

/// Follows the store a running import writes (read-only, beside it) until
/// it holds a row or the import has exited; returns the follower.
fn follow_until_rows(dir: &Path, child: &mut std::process::Child) -> Option<quiver::VectorReader<f32>> {
    let started = std::time::Instant::now();
    let mut reader: Option<quiver::VectorReader<f32>> = None;
    while started.elapsed() < std::time::Duration::from_secs(120) {
        if child.try_wait().expect("try_wait").is_some() {
            return reader;
        }
        match &reader {
            None => reader = quiver::StoreOptions::new(DIM).open_reader(dir).ok(),
            Some(r) => {
                r.refresh().expect("refresh the follower");
                if !r.is_empty() {
                    return reader;
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    panic!("the import stored nothing in two minutes");
}

// Proves Ctrl-C stops an import between batches: the process is frozen
// (SIGSTOP) once the store holds rows, the follower's count is read, SIGINT
// is sent and the process resumed. Unless the frozen import had already
// stored every row, it must exit 130 with the import JSON marked
// interrupted and the resume flags on stderr; the store then holds exactly a
// whole number of batches (at least what the follower saw) under the right
// ids, bit-exact, and the printed resume flags complete the file.
#[test]
fn ctrl_c_stops_an_import_between_batches_and_the_resume_flags_complete_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("big.fvecs");
    write_big_fvecs(&file);
    let dir = tmp.path().join("store");
    let (d, f) = (dir.to_str().expect("utf-8"), file.to_str().expect("utf-8"));
    let first_id = 1000u64;
    let mut child = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["import", d, f, "--batch-mib", "1", "--first-id", "1000", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn quiver import");

    let follower = follow_until_rows(&dir, &mut child);
    let running = child.try_wait().expect("try_wait").is_none();
    let mut seen = 0u64;
    if running {
        send("STOP", &child);
        if let Some(r) = &follower {
            r.refresh().expect("refresh");
            seen = r.len() as u64;
        }
        send("INT", &child);
        send("CONT", &child);
    }
    drop(follower);
    let out = child.wait_with_output().expect("wait for the import");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("signal sent: {running}; rows seen before it: {seen}; {}", text(&out));

    if out.status.code() == Some(0) {
        assert!(!running || seen == ROWS, "the import finished although it was stopped at {seen} of {ROWS} rows");
        assert_rows_stored(&dir, first_id, ROWS);
        return;
    }
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    let value = json::check(stdout(&out).trim()).unwrap_or_else(|e| panic!("invalid JSON ({e}):\n{}", text(&out)));
    json::assert_documented(&value, "import");
    let stored = value["rows"].as_u64().expect("rows");
    assert_eq!((value["interrupted"].as_bool(), value["next_row"].as_u64()), (Some(true), Some(stored)));
    assert_eq!(value["end_id"].as_u64(), Some(first_id + stored));
    assert!(stored.is_multiple_of(BATCH_ROWS) && stored >= seen && stored < ROWS, "{stored} rows stored");
    let resume = format!("resume with --skip-rows {stored} --first-id {first_id}");
    assert!(err.contains("interrupted by SIGINT") && err.contains(&resume), "stderr lacks {resume:?}:\n{err}");
    assert_rows_stored(&dir, first_id, stored);

    let flags: Vec<&str> = err.split("resume with ").nth(1).expect("flags").split_whitespace().take(4).collect();
    let mut args = vec!["import", d, f, "--batch-mib", "1"];
    args.extend(&flags);
    let out = quiver(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_rows_stored(&dir, first_id, ROWS);
}

// Proves kill -9 of a running import leaves whole batches: reopening the
// store finds the ids 0..n of file rows 0..n, bit-exact, with n a multiple
// of the batch rows (or the whole file), whatever moment the kill landed;
// rerunning with --skip-rows n (the store's count) completes the file.
#[test]
fn kill_9_of_an_import_leaves_whole_batches_and_skip_rows_completes_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("big.fvecs");
    write_big_fvecs(&file);
    let dir = tmp.path().join("store");
    let (d, f) = (dir.to_str().expect("utf-8"), file.to_str().expect("utf-8"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["import", d, f, "--batch-mib", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn quiver import");
    drop(follow_until_rows(&dir, &mut child));
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("wait");

    let info = quiver(&["info", d, "--json"]);
    assert_eq!(info.status.code(), Some(0), "{}", text(&info));
    let store: quiver::VectorStore<f32> = quiver::VectorStore::open(&dir, DIM).expect("reopen after kill -9");
    let n = store.len() as u64;
    store.close().expect("close");
    eprintln!("killed ({status}) with {n} of {ROWS} rows stored");
    assert!(n.is_multiple_of(BATCH_ROWS) || n == ROWS, "{n} rows is not a whole number of batches");
    assert_rows_stored(&dir, 0, n);

    let out = quiver(&["import", d, f, "--batch-mib", "1", "--skip-rows", &n.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_rows_stored(&dir, 0, ROWS);
}

/// A minimal JSON syntax checker (RFC 8259), so the test needs no JSON crate.
mod json {
    /// Parses `s` as one JSON value.
    pub(crate) fn check(s: &str) -> Result<serde_json::Value, String> {
        serde_json::from_str(s).map_err(|e| e.to_string())
    }

    /// The keys docs/CLI.md lists for the table marked `<!-- json: name -->`.
    pub(crate) fn documented_keys(name: &str) -> Vec<String> {
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/CLI.md")).expect("docs/CLI.md");
        let marker = format!("<!-- json: {name} -->");
        let table = doc.split(&marker).nth(1).unwrap_or_else(|| panic!("docs/CLI.md has no {marker}"));
        table
            .lines()
            .skip(3)
            .take_while(|l| l.starts_with('|'))
            .map(|l| l.split('|').nth(1).expect("a key cell").trim().trim_matches('`').to_string())
            .collect()
    }

    /// Requires `value` to be an object whose keys are exactly the
    /// documented ones, in order.
    pub(crate) fn assert_documented(value: &serde_json::Value, name: &str) {
        let keys: Vec<String> =
            value.as_object().unwrap_or_else(|| panic!("{name}: not an object")).keys().cloned().collect();
        assert_eq!(keys, documented_keys(name), "{name}: the JSON keys and docs/CLI.md disagree");
    }
}
