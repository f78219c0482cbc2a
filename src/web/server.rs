//! The connection loop: hyper's HTTP/1 server, calling the poem endpoint for every request.
//!
//! Parley runs its own loop rather than poem's `Server` so that every held long-poll costs as
//! little as hyper allows: bounded read buffers (`max_buf_size`), requests detached from them
//! (`detach`), and held answers completed here, outside the endpoint chain (`held`). The
//! measurements behind each choice are in BENCHMARKS.md ("What made the difference"). Parley
//! speaks HTTP/1.1 only: behind a TLS proxy that is what the upstream hop uses.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use poem::http::uri::Scheme;
use poem::http::{HeaderValue, Uri};
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Endpoint, EndpointExt, Response};
use tokio::net::TcpListener;

use super::held;

/// Serves `ep` on `listener` until `shutdown` resolves; then stops accepting, calls `on_shutdown`
/// (which answers held polls) and gives open connections up to `grace` to finish.
pub async fn serve<E>(
    listener: TcpListener,
    ep: E,
    shutdown: impl Future<Output = ()>,
    on_shutdown: impl FnOnce(),
    grace: Duration,
) -> std::io::Result<()>
where
    E: Endpoint<Output = Response> + 'static,
{
    let ep = Arc::new(ep.boxed());
    let local = LocalAddr(Addr::SocketAddr(listener.local_addr()?));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, typically: keep the connections we have, retry soon.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = service_fn({
            let (ep, local, remote) = (ep.clone(), local.clone(), remote(peer));
            move |req: hyper::Request<Incoming>| {
                let (ep, local, remote) = (ep.clone(), local.clone(), remote.clone());
                async move {
                    let req = poem::Request::from((detach(req), local, remote, Scheme::HTTP));
                    let resp = held::finish(ep.get_response(req).await).await;
                    Ok::<_, Infallible>(hyper::Response::from(resp))
                }
            }
        });
        let conn = http1::Builder::new()
            // A per-request header timer costs fan-out latency (BENCHMARKS.md); slow clients are
            // the TLS proxy's job. Up to 32 KB of request head: nginx's default.
            .header_read_timeout(None)
            .max_buf_size(32 * 1024)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(%err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    on_shutdown();
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still busy after {grace:?}; closing them");
    }
    Ok(())
}

/// The request with its own copies of the URI and header values. hyper hands them out as slices
/// of its read buffer, which cannot be reused while any slice lives; hyper reads on (to see a
/// hang-up) while the request is still in the endpoint chain, and would allocate a second buffer
/// (measured in BENCHMARKS.md).
fn detach(req: hyper::Request<Incoming>) -> hyper::Request<Incoming> {
    let (mut parts, body) = req.into_parts();
    for value in parts.headers.values_mut() {
        if let Ok(copy) = HeaderValue::from_bytes(value.as_bytes()) {
            *value = copy;
        }
    }
    if let Ok(uri) = Uri::try_from(parts.uri.to_string()) {
        parts.uri = uri;
    }
    hyper::Request::from_parts(parts, body)
}

fn remote(peer: SocketAddr) -> RemoteAddr {
    RemoteAddr(Addr::SocketAddr(peer))
}
