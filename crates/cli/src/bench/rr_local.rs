//! The request-response server of `engine-local`: the whole connection on one
//! `LocalEngine` ring — accept, one multishot recv for the connection's life (each
//! request arrives as an event; nothing is re-armed per request), the response
//! (16-byte header + file body) as a transfer — with one `io_uring_enter` per turn for
//! all connections.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_engine::{Event, LocalEngine, LocalHandle, OpId, Transfer};

use super::common::fail;
use super::rr_wire::header;

pub fn serve(listener: TcpListener, file: Arc<File>, size: u64, n: usize) -> io::Result<()> {
    let mut ring = LocalEngine::new()?;
    let hdr = header(size);
    let accept = ring.accept(Arc::new(listener));
    let mut reading: HashMap<OpId, Arc<TcpStream>> = HashMap::new();
    let mut sending: HashMap<OpId, LocalHandle> = HashMap::new();
    let (mut accepted, mut closed) = (0, 0);
    let mut last_event = Instant::now();
    while closed < n {
        ring.turn(Some(Duration::from_secs(1)))?;
        let events: Vec<Event> = ring.events().collect();
        if !events.is_empty() {
            last_event = Instant::now();
        } else if last_event.elapsed() > Duration::from_secs(10) {
            let stuck: Vec<u64> = sending.values().map(|h| h.progress().bytes()).collect();
            return Err(fail(format!(
                "engine-local server: no event for 10 s (transfers at {stuck:?} bytes, {:?})",
                ring.stats().in_flight
            )));
        }
        for ev in events {
            match ev {
                Event::Accepted { conn: Ok(fd), .. } => {
                    let s = TcpStream::from(fd);
                    s.set_nodelay(true)?;
                    s.set_nonblocking(true)?;
                    let s = Arc::new(s);
                    reading.insert(ring.recv_multi(s.clone()), s);
                    accepted += 1;
                    if accepted == n {
                        ring.cancel(accept);
                    }
                }
                Event::Received { op, result, .. } => {
                    let s = reading.get(&op).ok_or_else(|| fail("unknown recv"))?;
                    if result? == 0 {
                        reading.remove(&op);
                        closed += 1;
                        continue;
                    }
                    // One request at a time per connection: the client waits for each
                    // response before it asks again.
                    let t = Transfer::new(file.clone(), s.clone())
                        .src_offset(Some(0))
                        .len(Some(size))
                        .header(hdr.to_vec());
                    let h = ring.submit(t)?;
                    sending.insert(h.id(), h);
                }
                Event::TransferDone { op } => {
                    let h = sending
                        .remove(&op)
                        .ok_or_else(|| fail("unknown transfer"))?;
                    h.try_take().map_err(|_| fail("transfer not finished"))??;
                }
                Event::Accepted { conn: Err(e), .. } if accepted < n => return Err(e),
                Event::Accepted { .. } | Event::Timer { .. } | Event::Closed { .. } => {}
                Event::Sent { .. } => return Err(fail("unexpected send event")),
                other => return Err(fail(format!("unexpected event {other:?}"))),
            }
        }
    }
    Ok(())
}
