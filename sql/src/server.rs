//! Serving the Flight SQL service on a listener, with the tier's mutual TLS.

use std::future::Future;

use arrow_flight::flight_service_server::FlightServiceServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::ServerTlsConfig;

use crate::SqlService;

/// The largest request a client may send (a statement's SQL, a ticket): results flow the other way.
const MAX_REQUEST_BYTES: usize = 4 << 20;

/// Why the endpoint could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("the Flight SQL endpoint's TLS configuration: {0}")]
    Tls(tonic::transport::Error),
    #[error("the Flight SQL endpoint: {0}")]
    Transport(tonic::transport::Error),
}

/// Serves `service` on `listener` until `shutdown` completes; `tls` is the tier's own server TLS
/// (`None` only for a plaintext loopback tier, `--insecure`).
pub async fn serve(
    listener: TcpListener,
    tls: Option<ServerTlsConfig>,
    service: SqlService,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let mut server = tonic::transport::Server::builder().tcp_nodelay(true);
    if let Some(tls) = tls {
        server = server.tls_config(tls).map_err(ServeError::Tls)?;
    }
    server
        .add_service(FlightServiceServer::new(service).max_decoding_message_size(MAX_REQUEST_BYTES))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
        .map_err(ServeError::Transport)
}
