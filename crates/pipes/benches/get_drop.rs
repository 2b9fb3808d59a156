//! Steady-state cost of `PipePool::get` + drop (one FIONREAD ioctl per return),
//! against creating and closing a fresh sized pipe each time.
use criterion::{criterion_group, criterion_main, Criterion};
use ferry_pipes::{PipePool, PoolConfig};

fn get_drop(c: &mut Criterion) {
    let pool = PipePool::new(PoolConfig::default()).expect("pool");
    drop(pool.get().expect("warm the pool"));
    let mut g = c.benchmark_group("pipe_pool");
    g.bench_function("get_drop_pooled", |b| {
        b.iter(|| drop(std::hint::black_box(pool.get().expect("get"))))
    });
    let unpooled = PipePool::new(PoolConfig {
        capacity: 0,
        ..PoolConfig::default()
    })
    .expect("pool");
    g.bench_function("create_close_1MiB", |b| {
        b.iter(|| drop(std::hint::black_box(unpooled.get().expect("get"))))
    });
    g.finish();
}

criterion_group!(benches, get_drop);
criterion_main!(benches);
