//! Opening files beneath the served root, and the per-thread cache of open files and
//! small bodies.
//!
//! Containment is the kernel's job where it can do it: `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_MAGICLINKS)` (Linux 5.6+) refuses any `..`, absolute symlink or magic link
//! that would leave the root, so a symlink inside the root that points outside it is
//! refused (403). Where `openat2` is missing (ENOSYS, or EPERM from a seccomp filter),
//! the path is walked one component at a time with `O_NOFOLLOW`: every symlink is
//! refused there, stricter still. Paths reaching this module are already normalised
//! (no `.`/`..`, no empty component; see `target.rs`).
//!
//! Files are opened `O_NONBLOCK | O_NOCTTY`, so a FIFO or device under the root neither
//! blocks the opening thread nor becomes its terminal; anything but a regular file or a
//! directory is then refused (404, as nginx does).
//!
//! The cache keeps, per thread, open files by path for `valid` (1 s by default, like
//! nginx's `open_file_cache_valid` but shorter) and re-checks each hit with one `fstat`:
//! a file changed in place (size or mtime) is seen at once; a file renamed over the path
//! is seen within `valid`. Small bodies are cached with the (size, mtime) they were read
//! at and served only while `fstat` still gives those: never stale bytes.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

pub use super::meta::{Kind, Meta};

/// Why a path cannot be served, as an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// 404: missing, not a directory on the way, name too long, not a regular file.
    NotFound,
    /// 403: permission, a symlink leaving the root (or any symlink without openat2).
    Forbidden,
    /// 500: anything else the kernel said (EMFILE, EIO, …).
    Internal,
}

/// The served directory.
#[derive(Debug)]
pub struct Root {
    dir: OwnedFd,
    /// `openat2` works here (probed once at start).
    beneath: bool,
}

impl Root {
    /// Opens `path` as the root. Fails when it is not a directory that can be searched.
    /// It is opened `O_PATH`: files beneath it are opened through it, which needs only
    /// search permission (`x`), so a root of mode 711 serves its readable files as
    /// nginx does; its listing, which would need `r`, is never read.
    pub fn open(path: &std::path::Path) -> io::Result<Root> {
        let dir = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!("--root {}: {}", path.display(), io::Error::from(e)),
            )
        })?;
        let beneath = !matches!(
            rustix::fs::openat2(
                &dir,
                ".",
                OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::BENEATH,
            ),
            Err(Errno::NOSYS | Errno::PERM)
        );
        Ok(Root { dir, beneath })
    }

    /// A second handle on the same directory (one per server thread).
    pub fn try_clone(&self) -> io::Result<Root> {
        Ok(Root {
            dir: self.dir.try_clone()?,
            beneath: self.beneath,
        })
    }

    /// Whether containment is enforced by `openat2` (else by the component walk).
    pub fn uses_openat2(&self) -> bool {
        self.beneath
    }

    /// Opens a normalised relative path (`a/b/c`, non-empty) beneath the root.
    pub fn open_beneath(&self, rel: &[u8]) -> Result<(File, Meta), Refused> {
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let fd = if self.beneath {
            rustix::fs::openat2(
                &self.dir,
                rel,
                flags,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
            )
        } else {
            self.walk(rel, flags)
        }
        .map_err(refused)?;
        let meta = fstat(&fd).map_err(|_| Refused::Internal)?;
        Ok((File::from(fd), meta))
    }

    /// Without openat2: one `openat(O_NOFOLLOW)` per component from the root's fd.
    fn walk(&self, rel: &[u8], last_flags: OFlags) -> rustix::io::Result<OwnedFd> {
        let parts: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
        let mut dir: Option<OwnedFd> = None;
        for (i, part) in parts.iter().enumerate() {
            let at = dir.as_ref().map_or(self.dir.as_fd(), |d| d.as_fd());
            let flags = if i + 1 == parts.len() {
                last_flags | OFlags::NOFOLLOW
            } else {
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
            };
            let next = rustix::fs::openat(at, *part, flags, Mode::empty())?;
            if i + 1 == parts.len() {
                return Ok(next);
            }
            dir = Some(next);
        }
        Err(Errno::NOENT)
    }
}

fn refused(e: Errno) -> Refused {
    match e {
        // ENXIO, ENODEV: a socket or a device without a driver: not a file to serve.
        Errno::NOENT | Errno::NOTDIR | Errno::NAMETOOLONG | Errno::NXIO | Errno::NODEV => {
            Refused::NotFound
        }
        // EXDEV: RESOLVE_BENEATH stopped an escape; ELOOP: a symlink (walk) or a loop.
        Errno::ACCESS | Errno::PERM | Errno::MLINK | Errno::LOOP | Errno::XDEV => {
            Refused::Forbidden
        }
        _ => Refused::Internal,
    }
}

/// `fstat` of an open file, reduced to [`Meta`].
pub fn fstat(fd: impl AsFd) -> io::Result<Meta> {
    let st = rustix::fs::fstat(fd)?;
    let kind = match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => Kind::File,
        FileType::Directory => Kind::Dir,
        _ => Kind::Other,
    };
    Ok(Meta {
        size: st.st_size as u64,
        mtime: st.st_mtime,
        mtime_nsec: st.st_mtime_nsec as i64,
        kind,
    })
}

/// What a response says about a file, formatted once per (file, metadata) rather than
/// once per request.
#[derive(Debug)]
pub struct FileInfo {
    pub meta: Meta,
    /// nginx's ETag, `"<hex mtime>-<hex size>"`.
    pub etag: String,
    /// `Last-Modified` as an HTTP date.
    pub modified: String,
    /// `Content-Type` from the file name's extension.
    pub content_type: &'static str,
}

impl FileInfo {
    fn new(meta: Meta, rel: &[u8]) -> FileInfo {
        FileInfo {
            meta,
            etag: meta.etag(),
            modified: meta.last_modified(),
            content_type: super::mime::content_type(rel),
        }
    }
}

/// An open regular file from the cache, with its current metadata and, when small and
/// unchanged since read, its bytes.
#[derive(Debug, Clone)]
pub struct Hit {
    pub file: Arc<File>,
    pub info: Rc<FileInfo>,
    pub body: Option<Arc<[u8]>>,
}

struct Entry {
    file: Arc<File>,
    info: Rc<FileInfo>,
    opened: Instant,
    /// Bytes read when the file had `body_meta`.
    body: Option<(Meta, Arc<[u8]>)>,
}

/// One thread's open files, by relative path.
pub struct FileCache {
    entries: HashMap<Vec<u8>, Entry>,
    valid: Duration,
    capacity: usize,
    small: u64,
}

impl FileCache {
    /// `valid`: how long a path → file mapping is trusted; `small`: bodies up to this
    /// size are kept in memory (0: none).
    pub fn new(valid: Duration, capacity: usize, small: u64) -> FileCache {
        FileCache {
            entries: HashMap::new(),
            valid,
            capacity,
            small,
        }
    }

    /// The regular file at `rel`, from the cache or freshly opened. Directories and
    /// other kinds are returned as their `Kind` with no file kept. `now`: the caller's
    /// clock (one reading per batch of requests).
    pub fn get(
        &mut self,
        root: &Root,
        rel: &[u8],
        now: Instant,
    ) -> Result<Result<Hit, Kind>, Refused> {
        if let Some(e) = self.entries.get_mut(rel) {
            if now.saturating_duration_since(e.opened) < self.valid {
                if let Ok(meta) = fstat(&*e.file) {
                    if meta != e.info.meta {
                        e.info = Rc::new(FileInfo::new(meta, rel));
                    }
                    let body = match &e.body {
                        Some((m, b)) if *m == meta => Some(b.clone()),
                        _ => None,
                    };
                    return Ok(Ok(Hit {
                        file: e.file.clone(),
                        info: e.info.clone(),
                        body,
                    }));
                }
            }
            self.entries.remove(rel);
        }
        let (file, meta) = root.open_beneath(rel)?;
        if meta.kind != Kind::File {
            return Ok(Err(meta.kind));
        }
        let file = Arc::new(file);
        let info = Rc::new(FileInfo::new(meta, rel));
        if self.entries.len() >= self.capacity {
            // Cheap and bounded; a hot set refills within a request each.
            self.entries.clear();
        }
        self.entries.insert(
            rel.to_vec(),
            Entry {
                file: file.clone(),
                info: info.clone(),
                opened: now,
                body: None,
            },
        );
        Ok(Ok(Hit {
            file,
            info,
            body: None,
        }))
    }

    /// Closes the files whose path mapping is older than `valid` (called a few times a
    /// second, so an idle server holds no file open for long).
    pub fn purge_expired(&mut self, now: Instant) {
        let valid = self.valid;
        self.entries
            .retain(|_, e| now.saturating_duration_since(e.opened) < valid);
    }

    /// Reads a small file's bytes into the cache when they are in the page cache
    /// (`preadv2(RWF_NOWAIT)`: never waits for the disk) and the file did not change
    /// while being read. Returns them, or `None` (serve from the file this time).
    pub fn load_small(&mut self, rel: &[u8], hit: &Hit) -> Option<Arc<[u8]>> {
        let meta = hit.info.meta;
        if meta.size > self.small || meta.kind != Kind::File {
            return None;
        }
        let mut buf = vec![0u8; meta.size as usize];
        let mut iov = [io::IoSliceMut::new(&mut buf)];
        let n = rustix::io::preadv2(&*hit.file, &mut iov, 0, rustix::io::ReadWriteFlags::NOWAIT)
            .ok()?;
        if n as u64 != meta.size || fstat(&*hit.file).ok()? != meta {
            return None;
        }
        let body: Arc<[u8]> = buf.into();
        if let Some(e) = self.entries.get_mut(rel) {
            e.body = Some((meta, body.clone()));
        }
        Some(body)
    }
}
