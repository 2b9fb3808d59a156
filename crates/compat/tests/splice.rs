//! `splice` and `copy_file_range` on real files, pipes and sockets.
mod common;
use common::*;

use ferry_compat::{copy_file_range, splice, SpliceFlags};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;

const NONE: SpliceFlags = SpliceFlags::empty();

#[test]
fn file_to_pipe_offsets_and_positions() {
    let _g = serial();
    let data = pattern(10_000);
    let mut f = file_with(&data);
    let (mut r, w) = std::io::pipe().unwrap();
    assert_eq!(splice(&f, &w, 100, Some(500), None, NONE).unwrap(), 100);
    assert_eq!(
        f.stream_position().unwrap(),
        0,
        "Some offset: position kept"
    );
    assert_eq!(
        splice(&f, &w, 10, None, None, SpliceFlags::MORE).unwrap(),
        10
    );
    assert_eq!(
        f.stream_position().unwrap(),
        10,
        "None offset: position advanced"
    );
    assert_eq!(read_n(&mut r, 100), &data[500..600]);
    assert_eq!(read_n(&mut r, 10), &data[..10]);
}

#[test]
fn pipe_to_file_at_offset_and_pipe_to_socket() {
    let _g = serial();
    let (r, mut w) = std::io::pipe().unwrap();
    let mut out = tempfile::tempfile().unwrap();
    w.write_all(b"abcdef").unwrap();
    assert_eq!(splice(&r, &out, 3, None, Some(4), NONE).unwrap(), 3);
    assert_eq!(out.stream_position().unwrap(), 0);
    let mut got = Vec::new();
    out.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"\0\0\0\0abc");

    let (c, s) = tcp_pair();
    let rx = drain(s);
    assert_eq!(splice(&r, &c, 100, None, None, NONE).unwrap(), 3);
    drop(c);
    assert_eq!(rx.join().unwrap(), b"def");
}

#[test]
fn socket_to_pipe_and_zero_at_peer_close() {
    let _g = serial();
    let (mut c, s) = tcp_pair();
    let (mut r, w) = std::io::pipe().unwrap();
    c.write_all(b"over the wire").unwrap();
    let mut got = 0;
    while got < 13 {
        got += splice(&s, &w, 64, None, None, NONE).unwrap();
    }
    assert_eq!(read_n(&mut r, 13), b"over the wire");
    drop(c);
    assert_eq!(splice(&s, &w, 64, None, None, NONE).unwrap(), 0, "EOF");
}

#[test]
fn pipe_with_no_writers_gives_zero() {
    let _g = serial();
    let (r, w) = std::io::pipe().unwrap();
    drop(w);
    let (_r2, w2) = std::io::pipe().unwrap();
    assert_eq!(splice(&r, &w2, 10, None, None, NONE).unwrap(), 0);
}

#[test]
fn offset_on_the_pipe_side_is_espipe() {
    let _g = serial();
    let f = file_with(b"0123456789");
    let (r, w) = std::io::pipe().unwrap();
    assert_eq!(
        errno(&splice(&f, &w, 4, None, Some(0), NONE).unwrap_err()),
        libc::ESPIPE
    );
    assert_eq!(
        errno(&splice(&r, &f, 4, Some(0), None, NONE).unwrap_err()),
        libc::ESPIPE
    );
}

#[test]
fn no_pipe_or_same_pipe_is_einval() {
    let _g = serial();
    let before = fd_count();
    let a = file_with(b"0123456789");
    let b = tempfile::tempfile().unwrap();
    assert_eq!(
        errno(&splice(&a, &b, 4, None, None, NONE).unwrap_err()),
        libc::EINVAL
    );
    let (c, _s) = tcp_pair();
    assert_eq!(
        errno(&splice(&a, &c, 4, Some(0), None, NONE).unwrap_err()),
        libc::EINVAL
    );
    let (r, mut w) = std::io::pipe().unwrap();
    w.write_all(b"x").unwrap();
    let w2 = w.try_clone().unwrap();
    assert_eq!(
        errno(&splice(&r, &w2, 1, None, None, NONE).unwrap_err()),
        libc::EINVAL
    );
    drop((a, b, c, _s, r, w, w2));
    assert_eq!(fd_count(), before);
}

#[test]
fn count_zero_returns_zero() {
    let _g = serial();
    let f = file_with(b"abc");
    let (_r, w) = std::io::pipe().unwrap();
    assert_eq!(splice(&f, &w, 0, None, None, NONE).unwrap(), 0);
}

#[test]
fn nonblock_flag_on_an_empty_pipe_would_block() {
    let _g = serial();
    let (r, _w) = std::io::pipe().unwrap();
    let out = tempfile::tempfile().unwrap();
    let e = splice(&r, &out, 10, None, None, SpliceFlags::NONBLOCK).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
}

#[test]
fn into_a_pipe_moves_at_most_its_free_space_and_huge_counts_are_clamped() {
    let _g = serial();
    let data = pattern(4 << 20);
    let f = file_with(&data);
    let (r, w) = std::io::pipe().unwrap();
    let n = splice(&f, &w, usize::MAX, Some(0), None, SpliceFlags::NONBLOCK).unwrap();
    assert!(n > 0 && n <= 1 << 20, "moved {n}");
    assert_eq!(read_n(&r, n), &data[..n]);
}

#[test]
fn offsets_past_i64_max_name_the_argument() {
    let _g = serial();
    let f = file_with(b"abc");
    let (r, w) = std::io::pipe().unwrap();
    let e = splice(&f, &w, 1, Some(u64::MAX), None, NONE).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("offset_src"), "{e}");
    let e = splice(&r, &f, 1, None, Some(u64::MAX), NONE).unwrap_err();
    assert!(e.to_string().contains("offset_dst"), "{e}");
    let e = copy_file_range(&f, &f, 1, None, Some(1 << 63)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("offset_dst"), "{e}");
}

#[test]
fn copy_file_range_positions_and_bytes() {
    let _g = serial();
    let data = pattern(300_000);
    let mut src = file_with(&data);
    let mut dst = tempfile::tempfile().unwrap();
    let mut done = 0;
    while done < 200_000 {
        let n = copy_file_range(&src, &dst, 200_000 - done, None, None).unwrap();
        assert!(n > 0);
        done += n;
    }
    assert_eq!(src.stream_position().unwrap(), 200_000);
    assert_eq!(dst.stream_position().unwrap(), 200_000);
    // explicit offsets: positions unchanged
    assert_eq!(
        copy_file_range(&src, &dst, 1000, Some(299_000), Some(500_000)).unwrap(),
        1000
    );
    assert_eq!(src.stream_position().unwrap(), 200_000);
    assert_eq!(dst.stream_position().unwrap(), 200_000);
    // EOF and zero count
    assert_eq!(
        copy_file_range(&src, &dst, 10, Some(300_000), None).unwrap(),
        0
    );
    assert_eq!(copy_file_range(&src, &dst, 0, None, None).unwrap(), 0);
    dst.rewind().unwrap();
    let mut got = Vec::new();
    dst.read_to_end(&mut got).unwrap();
    assert_eq!(&got[..200_000], &data[..200_000]);
    assert!(got[200_000..500_000].iter().all(|&b| b == 0));
    assert_eq!(&got[500_000..], &data[299_000..]);
}

#[test]
fn copy_file_range_errors() {
    let _g = serial();
    let before = fd_count();
    let src = file_with(b"abcdef");
    let (r, w) = std::io::pipe().unwrap();
    assert_eq!(
        errno(&copy_file_range(&src, &w, 3, None, None).unwrap_err()),
        libc::EINVAL
    );
    assert_eq!(
        errno(&copy_file_range(&r, &src, 3, None, None).unwrap_err()),
        libc::EINVAL
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("append");
    let app = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    assert_eq!(
        errno(&copy_file_range(&src, &app, 3, None, None).unwrap_err()),
        libc::EBADF
    );
    let d = std::fs::File::open(dir.path()).unwrap();
    assert_eq!(
        errno(&copy_file_range(&d, &app, 3, None, None).unwrap_err()),
        libc::EISDIR
    );
    drop((src, r, w, app, d, dir));
    assert_eq!(fd_count(), before);
}

#[test]
fn blocking_flags_are_per_open_file_description_inheritable_per_fd() {
    let _g = serial();
    let (r, _w) = std::io::pipe().unwrap();
    let dup = r.try_clone().unwrap();
    assert!(ferry_compat::get_blocking(&r).unwrap());
    ferry_compat::set_blocking(&r, false).unwrap();
    assert!(
        !ferry_compat::get_blocking(&dup).unwrap(),
        "dup shares O_NONBLOCK"
    );
    ferry_compat::set_blocking(&dup, true).unwrap();
    assert!(ferry_compat::get_blocking(&r).unwrap());

    assert!(!ferry_compat::get_inheritable(&r).unwrap());
    ferry_compat::set_inheritable(r.as_fd(), true).unwrap();
    assert!(ferry_compat::get_inheritable(&r).unwrap());
    assert!(
        !ferry_compat::get_inheritable(&dup).unwrap(),
        "FD_CLOEXEC is per fd"
    );
    ferry_compat::set_inheritable(&r, false).unwrap();
    assert!(!ferry_compat::get_inheritable(&r).unwrap());
}

#[test]
fn set_position_then_splice_none_uses_it() {
    let _g = serial();
    let data = pattern(100);
    let mut f = file_with(&data);
    f.seek(SeekFrom::Start(90)).unwrap();
    let (r, w) = std::io::pipe().unwrap();
    assert_eq!(splice(&f, &w, 100, None, None, NONE).unwrap(), 10);
    assert_eq!(read_n(&r, 10), &data[90..]);
}
