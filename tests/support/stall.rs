//! A Docker socket proxy that stops answering chosen calls: a stalled engine, as far as those
//! calls go, while every other call passes through to the real one.
//!
//! Each request is read up to the end of its head and matched against the stall patterns (plain
//! substrings of its request line, such as `containers/create?name=ns.app` or a container id).
//! A match is held: nothing is forwarded and nothing answered until the patterns are cleared,
//! when the connection is closed. Anything else is forwarded with `Connection: close`, so the
//! client opens a connection per request and every request is seen here; after the head the
//! bytes are copied both ways (bodies, streams and upgraded connections alike).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

struct Shared {
    patterns: Mutex<Vec<String>>,
    /// Every request line seen, with when its head arrived.
    seen: Mutex<Vec<(std::time::Instant, String)>>,
    /// Bumped when the patterns are cleared: held requests are dropped.
    cleared: watch::Sender<u64>,
    held: AtomicUsize,
}

pub struct StallProxy {
    dir: tempfile::TempDir,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl StallProxy {
    /// Listens on a socket of its own and forwards to the engine at `target` (a unix socket).
    pub async fn start(target: &Path) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let listener = UnixListener::bind(dir.path().join("docker.sock")).expect("bind the proxy");
        let (cleared, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            patterns: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
            cleared,
            held: AtomicUsize::new(0),
        });
        let target = target.to_path_buf();
        let task = tokio::spawn({
            let shared = Arc::clone(&shared);
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    tokio::spawn(serve(client, target.clone(), Arc::clone(&shared)));
                }
            }
        });
        Self { dir, shared, task }
    }

    /// The proxy's socket: point a Docker client at it.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    /// Holds every later request whose request line contains `pattern`.
    pub fn stall(&self, pattern: &str) {
        self.patterns().push(pattern.to_string());
    }

    /// Answers everything again: held requests are closed unanswered.
    pub fn clear(&self) {
        self.patterns().clear();
        self.shared.cleared.send_modify(|n| *n += 1);
    }

    /// The request lines of the writes (anything but GET and HEAD) that arrived at or after
    /// `since`.
    pub fn writes_since(&self, since: std::time::Instant) -> Vec<String> {
        self.shared
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(at, line)| {
                *at >= since && !line.starts_with("GET ") && !line.starts_with("HEAD ")
            })
            .map(|(_, line)| line.clone())
            .collect()
    }

    /// Requests held so far.
    pub fn held(&self) -> usize {
        self.shared.held.load(Ordering::Acquire)
    }

    fn patterns(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.shared
            .patterns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for StallProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One client connection: one request (the head names it), held or forwarded.
async fn serve(mut client: UnixStream, target: PathBuf, shared: Arc<Shared>) {
    let mut buffer = Vec::with_capacity(4096);
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let mut chunk = [0u8; 4096];
        match client.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
        if buffer.len() > 1 << 20 {
            return;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let request_line = head.lines().next().unwrap_or_default().to_string();
    shared
        .seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((std::time::Instant::now(), request_line.clone()));
    let stalled = shared
        .patterns
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .any(|p| request_line.contains(p.as_str()));
    if stalled {
        shared.held.fetch_add(1, Ordering::AcqRel);
        let mut cleared = shared.cleared.subscribe();
        let _ = cleared.changed().await;
        return;
    }
    let Ok(mut upstream) = UnixStream::connect(&target).await else {
        return;
    };
    // An upgrade (exec, attach) keeps its head: the connection is the client's afterwards.
    let lower = head.to_ascii_lowercase();
    let rewritten = if lower.contains("\r\nupgrade:") {
        head
    } else {
        let mut rewritten = String::with_capacity(head.len() + 20);
        for line in head.trim_end_matches("\r\n").split("\r\n") {
            if !line.to_ascii_lowercase().starts_with("connection:") {
                rewritten.push_str(line);
                rewritten.push_str("\r\n");
            }
        }
        rewritten.push_str("Connection: close\r\n\r\n");
        rewritten
    };
    if upstream.write_all(rewritten.as_bytes()).await.is_err()
        || upstream.write_all(&buffer[head_end..]).await.is_err()
    {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}
