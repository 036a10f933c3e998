//! Writes made through any instance wake the leader's loop at once: every write transaction on
//! PostgreSQL announces itself on `wharf_changes` (delivered when it commits, see
//! `Store::announce`), and each instance listens on its own connection.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::store::CHANGES_CHANNEL as CHANNEL;

/// Listens on `url`'s database and wakes `wake` on every announced write. When the connection
/// is lost, notifications sent meanwhile are lost too, so a reconnection wakes it once as well.
pub fn spawn(url: String, wake: Arc<Notify>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(200);
        loop {
            match listen(&url, &wake).await {
                Ok(()) => delay = Duration::from_millis(200),
                Err(e) => {
                    tracing::debug!(
                        "listening for changes: {e}; again in {} ms",
                        delay.as_millis()
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    })
}

async fn listen(url: &str, wake: &Notify) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    // Whatever was written while this instance was not listening.
    wake.notify_one();
    loop {
        match listener.try_recv().await? {
            Some(_) => wake.notify_one(),
            // The connection was lost; the next call reconnects.
            None => return Ok(()),
        }
    }
}
