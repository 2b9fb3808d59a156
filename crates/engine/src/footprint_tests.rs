//! What one transfer costs in memory while it waits: the sizes of the structs an idle
//! proxied connection (two transfers) keeps, printed and bounded so that growth is a
//! decision, not an accident. The figures are in docs/proxy.md ("Memory per pair").

use std::mem::size_of;

#[test]
fn an_idle_transfer_stays_small() {
    let sizes = [
        ("Job", size_of::<crate::job::Job>()),
        ("Plan", size_of::<crate::plan::Plan>()),
        ("Slot", size_of::<crate::handle::Slot>()),
    ];
    for (name, size) in sizes {
        println!("size_of::<{name}>() = {size}");
    }
    let job = sizes[0].1;
    assert!(job <= 640, "Job grew to {job} bytes");
}
