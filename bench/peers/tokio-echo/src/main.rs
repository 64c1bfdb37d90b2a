//! Echo server on tokio-tungstenite, a peer for bench/compare and bench/run.sh.
//!   tokio-echo [PORT=0] [THREADS=1]   prints "listening on 127.0.0.1:PORT"
//! THREADS = 1 runs tokio's current-thread runtime (one thread does all the I/O, like
//! one reactor); more runs the multi-thread runtime with that many workers.
//!
//! Written the way the crate's own example (examples/echo-server.rs) writes it: the
//! stream split in two and `read.forward(write)`, which feeds every message to the sink
//! and flushes only when the read side has nothing ready, so a window of pipelined
//! messages goes out in one write. Pings are answered and closes acknowledged inside
//! tungstenite.
use futures_util::{future, StreamExt, TryStreamExt};
use std::io::Write;
use tokio::net::{TcpListener, TcpStream};

async fn echo(stream: TcpStream) {
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (write, read) = ws.split();
    // Errors end the connection, as in the example: a benchmark peer has no one to tell.
    let _ = read
        .try_filter(|msg| future::ready(msg.is_text() || msg.is_binary()))
        .forward(write)
        .await;
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
        std::io::stdout().flush().ok();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(echo(stream));
        }
    });
}
