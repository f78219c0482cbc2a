//! The connection loop: hyper's HTTP/1 server, calling the poem endpoint for every request.
//!
//! poem's own `Server` goes through hyper-util's HTTP/1-or-2 detection and offers no way to bound
//! hyper's buffers. Every held long-poll is a connection, and massif showed hyper's read buffer
//! growing to 16 KB per connection (the first block is still shared by the held request's headers
//! when hyper reserves the next). With the request detached from the buffer (`detach`), 10,000
//! held polls took 273 MB instead of 352 MB (`just bench --scenario capacity`); waiting outside
//! the endpoint chain (`held`) took them to 158 MB. The buffer starts at 8 KB and grows only for
//! a request head that needs it, up to a cap of 32 KB (nginx's default total for request headers;
//! other apps on the same host can leave kilobytes of cookies): the same 158–160 MB as an 8 KB
//! cap, which refused a 12 KB Cookie header with 431. A head of 100 KB is still refused.
//! Parley speaks HTTP/1.1 only: behind a TLS proxy that is what the upstream hop uses.

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
            // A per-request header timer cost ~2 ms of fan-out p50 (10.5 → 12.4 ms in `just bench`);
            // poem's server had none either. Slow clients are the TLS proxy's job.
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
/// of its 8 KB read buffer, which cannot be reused while any slice lives; hyper reads on (to see a
/// hang-up) while the request is still in the endpoint chain, and would allocate a second buffer.
/// Measured with 10,000 held polls: 163 MB without the copies, 158–160 MB with them.
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
