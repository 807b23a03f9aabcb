//! `run --publish`: forwards `127.0.0.1:PORT` on this host to the app on its internal network
//! (which Docker cannot publish: internal networks get no port mappings), in the foreground
//! until Ctrl-C or SIGTERM. Only this host's loopback listens; the app stays without a route out.

use tokio::net::{TcpListener, TcpStream};

use crate::error::{Error, RunError};

/// Binds `127.0.0.1:port` (before anything is built, so a port in use is bad input).
pub async fn listen(port: u16) -> Result<TcpListener, Error> {
    TcpListener::bind(("127.0.0.1", port)).await.map_err(|e| {
        Error::Usage(format!(
            "--publish {port}: cannot listen on 127.0.0.1:{port} ({e}); choose a free port"
        ))
    })
}

/// Forwards every connection to `target` until Ctrl-C or SIGTERM.
pub async fn serve(listener: TcpListener, target: (String, u16)) -> Result<(), Error> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| RunError::Failed(format!("cannot watch for SIGTERM: {e}")))?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((mut client, _)) = accepted else { continue };
                let target = target.clone();
                tokio::spawn(async move {
                    if let Ok(mut upstream) = TcpStream::connect((target.0.as_str(), target.1)).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = term.recv() => return Ok(()),
        }
    }
}
