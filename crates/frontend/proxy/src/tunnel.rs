//! A protocol switch (`Upgrade`, WebSocket) after the decision allowed it: once
//! the upstream answers 101, both upgraded connections are copied into each other
//! until either side closes.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// Joins the client's and the upstream's upgraded connections (in the
/// background: the 101 goes to the client first).
pub(crate) fn spawn(client: OnUpgrade, upstream: OnUpgrade, request_id: String) {
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(both) => both,
            Err(e) => {
                tracing::info!(request_id, error = %e, "upgrade did not complete");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            Ok((up, down)) => {
                tracing::debug!(request_id, up, down, "upgraded connection closed");
            }
            Err(e) => tracing::debug!(request_id, error = %e, "upgraded connection ended"),
        }
    });
}
