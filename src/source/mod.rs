//! The watched directory: spec files in a directory tree (usually a git clone) become
//! file-owned objects in the store.
//!
//! notify events only wake a debounced full rescan (editors write temp files and rename; git
//! checkouts touch many files at once); a periodic rescan covers lost events. Each file is read
//! whole: a bad file is reported (file, line, column, field) in the log, in `GET
//! /api/v1/sources` and as events on its objects, and its previous good objects stay. An
//! unreadable or missing directory changes nothing. This module never talks to Docker.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::notify::{Notice, Notifier};
use crate::spec::{Format, SpecError, read_bundle};
use crate::store::EventType;
use crate::store::{ObjectSource, Store, StoreError, WriteItem};

pub mod git;

/// Spec files larger than this are refused unread.
const MAX_FILE_BYTES: u64 = 4 << 20;
/// Quiet time after the last change before a rescan.
const DEBOUNCE: Duration = Duration::from_millis(250);
/// A rescan happens at least this often.
const RESCAN: Duration = Duration::from_secs(30);

/// What one scan found.
#[derive(Debug, Default)]
pub struct Scan {
    pub good: BTreeMap<ObjectSource, Vec<WriteItem>>,
    pub bad: BTreeMap<ObjectSource, Vec<SpecError>>,
}

/// The source of the objects of a file: its path relative to the watched directory.
pub fn source_name(relative: &Path) -> ObjectSource {
    let parts: Vec<_> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    ObjectSource::File(parts.join("/"))
}

fn is_spec_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

fn hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

/// Lists the spec files under `root` (recursive; hidden entries and `.git` skipped; symlinked
/// directories not followed).
pub fn spec_files(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            if hidden(&path) {
                continue;
            }
            let kind = entry.file_type()?;
            if kind.is_dir() {
                dirs.push(path);
            } else if is_spec_file(&path) && (kind.is_file() || kind.is_symlink()) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Reads and validates every spec file under `root`.
pub fn scan(root: &Path) -> std::io::Result<Scan> {
    let mut result = Scan::default();
    for path in spec_files(root)? {
        let relative = path.strip_prefix(root).unwrap_or(&path);
        let source = source_name(relative);
        let label = relative.display().to_string();
        match read_file(&path, &label) {
            Ok(items) => {
                result.good.insert(source, items);
            }
            Err(errors) => {
                result.bad.insert(source, errors);
            }
        }
    }
    Ok(result)
}

fn read_file(path: &Path, label: &str) -> Result<Vec<WriteItem>, Vec<SpecError>> {
    let fail = |message: String| {
        vec![SpecError {
            file: Some(label.to_string()),
            ..SpecError::message(message)
        }]
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(fail(format!(
            "file is {} bytes; the limit is {MAX_FILE_BYTES}",
            meta.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| fail(format!("not UTF-8: {e}")))?;
    let docs = read_bundle(&text, Format::for_path(path), Some(label))?;
    Ok(docs.iter().map(WriteItem::new).collect())
}

/// Scans once and makes the store match. Returns whether any object changed.
pub async fn sync_once(
    root: &Path,
    store: &Store,
    notifier: &Notifier,
) -> Result<bool, StoreError> {
    match scan_blocking(root).await {
        Some(scanned) => apply_scan(store, &scanned, None, notifier).await,
        None => Ok(false),
    }
}

/// `scan` on the blocking pool; `None` (logged) when the directory cannot be read.
pub async fn scan_blocking(root: &Path) -> Option<Scan> {
    let root_owned = root.to_path_buf();
    match tokio::task::spawn_blocking(move || scan(&root_owned)).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            tracing::error!(dir = %root.display(), "cannot read the spec files, keeping every object as it is: {e}");
            None
        }
        Err(e) => {
            tracing::error!("spec file scan failed: {e}");
            None
        }
    }
}

/// Makes the store match a scan (bad files keep their previous objects) and reports each
/// file's problems. `commit`: the git commit the files are, recorded on their objects.
/// Returns whether any object changed.
pub async fn apply_scan(
    store: &Store,
    scanned: &Scan,
    commit: Option<&str>,
    notifier: &Notifier,
) -> Result<bool, StoreError> {
    let bad: BTreeSet<ObjectSource> = scanned.bad.keys().cloned().collect();
    let report = store.sync_files(&scanned.good, &bad, commit).await?;
    for (kind, key, outcome) in &report.changed {
        tracing::info!(object = %kind.describe(key), "{outcome:?} from the spec files");
    }
    for (kind, key) in &report.deleted {
        tracing::info!(object = %kind.describe(key), "its spec file no longer declares it: deleting");
    }
    report_problems(
        store,
        scanned,
        &report.conflicts,
        "; its previously applied objects keep running unchanged",
        notifier,
    )
    .await?;
    Ok(!report.changed.is_empty() || !report.deleted.is_empty())
}

/// Records each file's problem (bad files, and `conflicts`: objects a file could not take)
/// once per change, as a source error, in the log (with `kept`, what still runs, for a bad
/// file) and as an event on the file's objects; clears the problems that are gone.
pub async fn report_problems(
    store: &Store,
    scanned: &Scan,
    conflicts: &BTreeMap<ObjectSource, Vec<String>>,
    kept: &str,
    notifier: &Notifier,
) -> Result<(), StoreError> {
    let mut problems: BTreeMap<&ObjectSource, String> = BTreeMap::new();
    for (source, errors) in &scanned.bad {
        let text = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        problems.insert(source, text);
    }
    for (source, conflicts) in conflicts {
        problems.insert(source, conflicts.join("\n"));
    }
    for (source, message) in &problems {
        if store.set_source_error(source, Some(message)).await? {
            let file = source.file().unwrap_or_default();
            let previous_kept = if scanned.bad.contains_key(*source) {
                kept
            } else {
                ""
            };
            tracing::error!(file, "spec file rejected{previous_kept}:\n{message}");
            notifier.send(Notice {
                event: crate::notify::Event::SourceRejected,
                time: crate::store::now_rfc3339(),
                instance: String::new(),
                object: None,
                source: Some(source.to_string()),
                message: format!("{file} was rejected{previous_kept}: {message}"),
            });
            for record in store.by_source(source).await? {
                store
                    .record_event(
                        &record,
                        EventType::Warning,
                        "InvalidSpec",
                        &format!("{file} was rejected: {message}"),
                    )
                    .await?;
            }
        }
    }
    let present: BTreeSet<&ObjectSource> = scanned.good.keys().chain(scanned.bad.keys()).collect();
    for known in store.source_errors().await? {
        if problems.contains_key(&known.source) {
            continue;
        }
        // Fixed, or the file is gone: either way there is no problem to report any more.
        store.set_source_error(&known.source, None).await?;
        if present.contains(&known.source) {
            tracing::info!(
                file = known.source.file().unwrap_or_default(),
                "spec file accepted again"
            );
        }
    }
    Ok(())
}

/// Watches `root` and keeps the store in step with it until aborted.
pub fn spawn(root: PathBuf, store: Store, wake: Arc<Notify>, notifier: Notifier) -> JoinHandle<()> {
    tokio::spawn(async move {
        let (tx, mut rx) = mpsc::channel::<()>(1);
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok() {
                // A full channel already holds a wake-up; dropping this one loses nothing.
                let _already_pending = tx.try_send(());
            }
        });
        let mut watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::error!(
                    "cannot watch {}: {e}; rescanning every {}s instead",
                    root.display(),
                    RESCAN.as_secs()
                );
                None
            }
        };
        let mut watching = false;
        loop {
            if !watching && let Some(w) = watcher.as_mut() {
                match w.watch(&root, RecursiveMode::Recursive) {
                    Ok(()) => {
                        watching = true;
                        tracing::info!(dir = %root.display(), "watching spec files");
                    }
                    Err(e) => tracing::warn!(dir = %root.display(), "cannot watch yet: {e}"),
                }
            }
            match sync_once(&root, &store, &notifier).await {
                Ok(true) => wake.notify_one(),
                Ok(false) => {}
                Err(e) => tracing::error!("storing the watched directory failed: {e}"),
            }
            // Wait for a change (or the periodic rescan), then for quiet.
            tokio::select! {
                _ = rx.recv() => {}
                _ = tokio::time::sleep(RESCAN) => {}
            }
            loop {
                tokio::select! {
                    _ = rx.recv() => continue,
                    _ = tokio::time::sleep(DEBOUNCE) => break,
                }
            }
        }
    })
}
