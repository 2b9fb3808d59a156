//! Engine submit → complete round trip for tiny transfers, on both backends:
//! into a socket (the inline path) and into a pipe (always through the backend's
//! threads: ring driver or blocking worker).
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ferry_benches::{discarding_socket, hot_file};
use ferry_engine::{Backend, Engine, Transfer};
use std::io::Read;
use std::sync::Arc;

fn roundtrip(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine_tiny_roundtrip");
    for backend in [Backend::IoUring, Backend::Blocking] {
        let engine = match Engine::builder().backend(backend).build() {
            Ok(e) => e,
            Err(e) => {
                eprintln!("SKIPPED {backend:?}: {e}");
                continue;
            }
        };
        let file = Arc::new(hot_file(64));
        let sock = Arc::new(discarding_socket());
        g.bench_function(
            BenchmarkId::new("64B_to_socket", format!("{backend:?}")),
            |b| {
                b.iter(|| {
                    engine
                        .submit(
                            Transfer::new(file.clone(), sock.clone())
                                .src_offset(Some(0))
                                .len(Some(64)),
                        )
                        .expect("submit")
                        .wait()
                        .expect("transfer")
                })
            },
        );
        let (mut r, w) = std::io::pipe().expect("pipe");
        let w = Arc::new(w);
        let mut buf = [0u8; 64];
        g.bench_function(
            BenchmarkId::new("64B_to_pipe", format!("{backend:?}")),
            |b| {
                b.iter(|| {
                    engine
                        .submit(
                            Transfer::new(file.clone(), w.clone())
                                .src_offset(Some(0))
                                .len(Some(64)),
                        )
                        .expect("submit")
                        .wait()
                        .expect("transfer");
                    r.read_exact(&mut buf).expect("read back");
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, roundtrip);
criterion_main!(benches);
