//! Serving the Flight SQL service on a listener, with the tier's mutual TLS.

use std::future::Future;

use arrow_flight::flight_service_server::FlightServiceServer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_stream::Stream;
use tonic::transport::server::Connected;

use crate::SqlService;

/// The largest request a client may send (a statement's SQL, a ticket): results flow the other way.
const MAX_REQUEST_BYTES: usize = 4 << 20;

/// Why the endpoint could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("the Flight SQL endpoint: {0}")]
    Transport(tonic::transport::Error),
}

/// Serves `service` on the connections of `incoming` until `shutdown` completes. The tier hands
/// over connections whose mutual TLS handshake it has done (its own acceptor, which counts the
/// handshakes that fail), so callers' certificates reach [`crate::Callers`]; plain TCP only for a
/// plaintext loopback tier (`--insecure`).
pub async fn serve<I, IO, IE>(
    incoming: I,
    service: SqlService,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError>
where
    I: Stream<Item = Result<IO, IE>>,
    IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
    IO::ConnectInfo: Clone + Send + Sync + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tonic::transport::Server::builder()
        .add_service(FlightServiceServer::new(service).max_decoding_message_size(MAX_REQUEST_BYTES))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(ServeError::Transport)
}
