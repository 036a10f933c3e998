//! Faults wharf must survive with nothing lost, against the real engine: the data directory's
//! file system running full.

use std::process::Command;
use std::time::Duration;

use crate::support::{Harness, wait_for};

/// A small tmpfs of its own, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "wharf-test-full",
            ])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "the full-disk test mounts a small tmpfs and needs root and mount (util-linux): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }

    /// Fills the file system with one file; returns its path.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.dir.path().join("filler");
        let mut file = std::fs::File::create(&path).expect("filler");
        let block = vec![0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        // Whatever is left in smaller pieces.
        let small = [0u8; 512];
        while file.write_all(&small).is_ok() {}
        let _ = file.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_data_directory_answers_507_keeps_containers_and_recovers() {
    let disk = SmallDisk::mount("8m");
    let data = disk.dir.path().join("data");
    let data_dir = data.clone();
    let mut h = Harness::start_with("t-full", move |config| {
        config.data_dir = data_dir;
    })
    .await;
    let (status, body) = h.apply(&h.sleeper_app("before", "")).await;
    assert_eq!(status, 200, "{body}");
    h.wait_ready("before").await;
    let container = h.container_id("before").await.expect("a container");

    let filler = disk.fill();
    // Writes now fail for lack of space: each is refused whole with 507 (a write may still fit
    // in space SQLite had already taken; the next ones do not).
    let mut refused = None;
    for i in 0..200 {
        let name = format!("during-{i}");
        let (status, body) = h.apply(&h.sleeper_app(&name, "")).await;
        match status {
            200 => continue,
            507 => {
                refused = Some((name, body));
                break;
            }
            other => panic!("{other}: {body}"),
        }
    }
    let (name, body) = refused.expect("a write refused with 507 once the disk is full");
    assert_eq!(body["reason"], "InsufficientStorage", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("full"),
        "{body}"
    );
    // Nothing of the refused write was stored; reads still work; the running app is untouched.
    assert!(h.get_app(&name).await.is_none(), "{name} half written");
    let (status, _) = h.get("/api/v1/apps").await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let inspected = h.inspect("before").await.expect("still there");
    assert_eq!(inspected.id.as_deref(), Some(container.as_str()));
    assert_eq!(inspected.state.and_then(|s| s.running), Some(true));

    // Space comes back: the same write succeeds and is reconciled.
    std::fs::remove_file(&filler).expect("free the space");
    let (status, body) = wait_for(
        "a write after space returns",
        Duration::from_secs(30),
        || async {
            let (status, body) = h.apply(&h.sleeper_app(&name, "")).await;
            (status != 507).then_some((status, body))
        },
    )
    .await;
    assert_eq!(status, 200, "{body}");
    h.wait_ready(&name).await;
    h.remove_containers().await;
    h.stop().await;
    drop(h);
}
