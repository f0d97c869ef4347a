//! The accept loop: TLS handshake (bounded in time), HTTP/1.1 on each connection,
//! graceful shutdown.

use crate::{Error, Result, ServerHandle, State};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use openssl::ssl::{Ssl, SslAcceptor};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_openssl::SslStream;

/// How long open connections get to finish after shutdown is asked.
const DRAIN: Duration = Duration::from_secs(5);

pub(crate) async fn start(
    state: Arc<State>,
    acceptor: SslAcceptor,
    addr: SocketAddr,
) -> Result<ServerHandle> {
    let listener = TcpListener::bind(addr).await.map_err(|source| Error::Io {
        context: format!("listening on {addr}"),
        source,
    })?;
    let addr = listener.local_addr().map_err(|source| Error::Io {
        context: "the listening address".into(),
        source,
    })?;
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(accept_loop(
        listener,
        Arc::new(acceptor),
        state.clone(),
        stopped,
    ));
    tracing::info!(%addr, vaults = state.vaults.len(), "wi-fi sync server listening");
    Ok(ServerHandle {
        addr,
        state,
        stop,
        task: Some(task),
    })
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Arc<SslAcceptor>,
    state: Arc<State>,
    mut stopped: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(state.limits.max_connections));
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p,
            _ = stopped.changed() => break,
        };
        let Ok(permit) = permit else {
            break;
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped.changed() => break,
        };
        while conns.try_join_next().is_some() {}
        let (acceptor, state, stopped) = (acceptor.clone(), state.clone(), stopped.clone());
        conns.spawn(async move {
            serve_conn(tcp, peer, &acceptor, state, stopped).await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN, async { while conns.join_next().await.is_some() {} }).await;
    conns.abort_all();
}

async fn serve_conn(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: &SslAcceptor,
    state: Arc<State>,
    mut stopped: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let Ok(ssl) = Ssl::new(acceptor.context()) else {
        return;
    };
    let Ok(mut tls) = SslStream::new(ssl, tcp) else {
        return;
    };
    let limit = state.limits.handshake_timeout;
    match tokio::time::timeout(limit, Pin::new(&mut tls).accept()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "tls handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "tls handshake timed out");
            return;
        }
    }
    let st = state.clone();
    let svc = hyper::service::service_fn(move |req| {
        let st = st.clone();
        async move { Ok::<_, std::convert::Infallible>(crate::dav::handle(&st, peer, req).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limit)
        .max_buf_size(state.limits.max_head_bytes.max(8192))
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(tls), svc);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        }
        _ = stopped.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
