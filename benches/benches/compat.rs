//! ferry-compat calls at 4 KiB and 1 MiB, file → loopback socket, against read+write.
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ferry_benches::{discarding_socket, hot_file};
use ferry_compat::SpliceFlags;
use ferry_pipes::{PipePool, PoolConfig};
use std::io::Write;
use std::os::unix::fs::FileExt;

fn compat(c: &mut Criterion) {
    let mut g = c.benchmark_group("compat_file_to_socket");
    let pool = PipePool::new(PoolConfig {
        nonblocking: false,
        ..Default::default()
    })
    .expect("pool");
    for size in [4096usize, 1 << 20] {
        let file = hot_file(size);
        let mut sock = discarding_socket();
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("sendfile", size), &size, |b, &n| {
            b.iter(|| {
                let mut off = 0;
                while off < n {
                    off += ferry_compat::sendfile(&sock, &file, Some(off as u64), n - off)
                        .expect("sendfile");
                }
            })
        });
        g.bench_with_input(
            BenchmarkId::new("splice_1MiB_pipe", size),
            &size,
            |b, &n| {
                let pipe = pool.get().expect("pipe");
                b.iter(|| {
                    let mut off = 0;
                    while off < n {
                        let k = ferry_compat::splice(
                            &file,
                            pipe.writer(),
                            n - off,
                            Some(off as u64),
                            None,
                            SpliceFlags::empty(),
                        )
                        .expect("splice in");
                        let mut left = k;
                        while left > 0 {
                            left -= ferry_compat::splice(
                                pipe.reader(),
                                &sock,
                                left,
                                None,
                                None,
                                SpliceFlags::MORE,
                            )
                            .expect("splice out");
                        }
                        off += k;
                    }
                })
            },
        );
        let mut buf = vec![0u8; size];
        g.bench_with_input(BenchmarkId::new("read_write", size), &size, |b, &n| {
            b.iter(|| {
                file.read_exact_at(&mut buf[..n], 0).expect("read");
                sock.write_all(&buf[..n]).expect("write");
            })
        });
    }
    g.finish();
}

criterion_group!(benches, compat);
criterion_main!(benches);
