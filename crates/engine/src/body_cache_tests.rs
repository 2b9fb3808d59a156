use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{BodyCache, RACY};

/// Whether this build reads with `RWF_NOWAIT`. The portable build cannot read a file
/// without maybe waiting for a disk, so its cache never loads anything: the tests say
/// so and check exactly that.
fn nowait_reads(c: &mut BodyCache, f: &File) -> bool {
    if cfg!(ferry_uring) {
        return true;
    }
    eprintln!("NOT TESTED: the body cache itself (no RWF_NOWAIT in this build; it stays empty)");
    assert!(c.body(f.as_fd()).is_none());
    assert_eq!(c.used(), 0);
    false
}

/// A file with `bytes`, old enough not to be racy.
fn settled(bytes: &[u8]) -> File {
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(bytes).unwrap();
    std::thread::sleep(RACY + Duration::from_millis(30));
    f
}

#[test]
fn a_hit_is_the_same_bytes_and_a_change_in_place_is_seen() {
    let mut c = BodyCache::new(16 << 10, 1 << 20);
    let f = settled(&[b'a'; 4096]);
    if !nowait_reads(&mut c, &f) {
        return;
    }
    let first = c.body(f.as_fd()).unwrap();
    assert_eq!(&first[..], &[b'a'; 4096][..]);
    let again = c.body(f.as_fd()).unwrap();
    assert!(Arc::ptr_eq(&first, &again), "second use comes from memory");
    assert_eq!(c.used(), 4096);

    // Same size, mtime put back to what it was: only ctime shows the write.
    let mtime = f.metadata().unwrap().modified().unwrap();
    f.write_all_at(&[b'b'; 4096], 0).unwrap();
    f.set_modified(mtime).unwrap();
    let changed = c.body(f.as_fd()).unwrap();
    assert_eq!(&changed[..], &[b'b'; 4096][..], "never the old bytes");
}

#[test]
fn a_file_changed_just_now_is_served_but_not_kept() {
    let mut c = BodyCache::new(16 << 10, 1 << 20);
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(b"fresh").unwrap();
    if !nowait_reads(&mut c, &f) {
        return;
    }
    assert_eq!(&c.body(f.as_fd()).unwrap()[..], b"fresh");
    assert_eq!(
        c.used(),
        0,
        "a write in the same clock tick could be invisible"
    );
    // A file whose mtime says "long ago" but whose ctime is now is racy too.
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 30))
        .unwrap();
    assert_eq!(&c.body(f.as_fd()).unwrap()[..], b"fresh");
    assert_eq!(c.used(), 0);
}

#[test]
fn too_big_not_regular_or_turned_off_is_none() {
    let mut c = BodyCache::new(4096, 1 << 20);
    let f = settled(&[0u8; 4097]);
    assert!(c.body(f.as_fd()).is_none());
    let empty = settled(b"");
    assert!(!c.may_hold(Some(4097)));
    assert!(c.may_hold(None) && c.may_hold(Some(4096)));
    let (r, _w) = std::io::pipe().unwrap();
    assert!(c.body(r.as_fd()).is_none());
    let off = BodyCache::new(4096, 0);
    assert!(!off.may_hold(Some(1)));
    // An empty file is a body too (no read needed, in every build).
    assert_eq!(c.body(empty.as_fd()).unwrap().len(), 0);
}

#[test]
fn the_budget_holds_and_the_least_recently_used_goes() {
    let mut c = BodyCache::new(4096, 8192);
    let files: Vec<File> = (0..3u8).map(|i| settled(&[i; 4096])).collect();
    if !nowait_reads(&mut c, &files[0]) {
        return;
    }
    let a = c.body(files[0].as_fd()).unwrap();
    c.body(files[1].as_fd()).unwrap();
    let a2 = c.body(files[0].as_fd()).unwrap(); // a is now the most recent
    assert!(Arc::ptr_eq(&a, &a2));
    c.body(files[2].as_fd()).unwrap(); // evicts files[1]
    assert_eq!(c.used(), 8192);
    let a3 = c.body(files[0].as_fd()).unwrap();
    assert!(Arc::ptr_eq(&a, &a3), "the recently used entry stayed");
    for (i, f) in files.iter().enumerate() {
        assert_eq!(&c.body(f.as_fd()).unwrap()[..], &[i as u8; 4096][..]);
    }
    assert!(c.used() <= 8192);
}
