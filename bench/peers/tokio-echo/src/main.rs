//! Echo server on tokio-tungstenite, a peer for bench/run.sh.
//!   tokio-echo [PORT=0] [THREADS=1]   prints "listening on 127.0.0.1:PORT"
//! THREADS = 1 runs tokio's current-thread runtime (one thread does all the I/O, like
//! one reactor); more runs the multi-thread runtime with that many workers.
//!
//! The strongest plain echo we could write on the crate, so that the comparison is
//! against the peer at its best: a task per connection that, for every message read,
//! also takes every message already readable without waiting, queues them all (`feed`)
//! and then writes them with one flush. Measured on this machine, the crate's own
//! example (`read.forward(write)` on a split stream) was ~40 % slower with one message
//! in flight, and `next()` + `send()` (a flush per message) ~7x slower with sixteen.
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

async fn echo(stream: TcpStream) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let wanted = |m: &Message| m.is_text() || m.is_binary();
    while let Some(Ok(msg)) = ws.next().await {
        if wanted(&msg) && ws.feed(msg).await.is_err() {
            return;
        }
        // Pings are answered and closes acknowledged inside tungstenite.
        while let Some(next) = ws.next().now_or_never() {
            match next {
                Some(Ok(msg)) => {
                    if wanted(&msg) && ws.feed(msg).await.is_err() {
                        return;
                    }
                }
                _ => {
                    let _ = ws.flush().await;
                    return;
                }
            }
        }
        if ws.flush().await.is_err() {
            return;
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().map(|p| p.parse().expect("port")).unwrap_or(0);
    let threads: usize = args
        .next()
        .map(|t| t.parse().expect("threads"))
        .unwrap_or(1);
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .expect("tokio runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        println!("listening on {}", listener.local_addr().unwrap());
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(echo(stream));
        }
    });
}
