//! Helpers for wharf's own tests and benchmarks: a tiny image built from the host's static
//! busybox, imported through the Engine API (no registry, no internet, no docker CLI).

use std::path::{Path, PathBuf};

use bollard::Docker;
use bollard::query_parameters::CreateImageOptions;
use futures::StreamExt;

/// Busybox applets linked into the image.
const APPLETS: &[&str] = &[
    "sh", "sleep", "yes", "cat", "echo", "true", "false", "env", "ls", "head", "dd", "wget",
    "httpd", "touch", "rm", "mkdir", "test",
];

/// A rootfs tar: /bin/busybox (static, from the host), applet links, /tmp, /work, /data and a
/// /VERSION file holding `version` (so two versions are two different images).
pub fn busybox_rootfs(busybox: &Path, version: &str) -> std::io::Result<Vec<u8>> {
    busybox_rootfs_with(busybox, version, &[], &[])
}

/// `busybox_rootfs` plus host files (`host path`, `path in the image`) and symlinks
/// (`path in the image`, `target`).
pub fn busybox_rootfs_with(
    busybox: &Path,
    version: &str,
    files: &[(PathBuf, String)],
    links: &[(String, String)],
) -> std::io::Result<Vec<u8>> {
    let bytes = std::fs::read(busybox)?;
    let mut builder = tar::Builder::new(Vec::new());
    for (host, path) in files {
        let content = std::fs::read(host)?;
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o755);
        h.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut h, path.trim_start_matches('/'), content.as_slice())?;
    }
    for (path, target) in links {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        builder.append_link(&mut h, path.trim_start_matches('/'), target)?;
    }
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o755);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, "bin/busybox", bytes.as_slice())?;
    for applet in APPLETS {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        builder.append_link(&mut h, format!("bin/{applet}"), "busybox")?;
    }
    for dir in ["tmp", "work", "data"] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_size(0);
        h.set_mode(0o1777);
        builder.append_data(&mut h, dir, std::io::empty())?;
    }
    let content = format!("{version}\n");
    let mut h = tar::Header::new_gnu();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    builder.append_data(&mut h, "VERSION", content.as_bytes())?;
    builder.into_inner()
}

/// Imports a busybox image as `reference` (`repo:tag`), like `docker import`.
pub async fn import_busybox(docker: &Docker, reference: &str, version: &str) -> Result<(), String> {
    let busybox = Path::new("/bin/busybox");
    let tar = busybox_rootfs(busybox, version).map_err(|e| {
        format!("a static busybox is needed at /bin/busybox (Debian package busybox-static): {e}")
    })?;
    import_tar(docker, reference, tar).await
}

/// Points the engine's `reference` (`repo:tag`) at the image `source`: what a pull of a new
/// version does to the engine's image list.
pub async fn retag(docker: &Docker, source: &str, reference: &str) -> Result<(), String> {
    let (repo, tag) = reference
        .rsplit_once(':')
        .ok_or_else(|| format!("{reference} is not repo:tag"))?;
    docker
        .tag_image(
            source,
            Some(bollard::query_parameters::TagImageOptions {
                repo: Some(repo.to_string()),
                tag: Some(tag.to_string()),
            }),
        )
        .await
        .map_err(|e| format!("tagging {source} as {reference}: {e}"))
}

/// Imports a busybox image that also carries the host's git (`/usr/bin/git` and the shared
/// libraries `ldd` names), as `git` and as the exec-path helpers a local `git pull` runs.
pub async fn import_git(docker: &Docker, reference: &str) -> Result<(), String> {
    let git = Path::new("/usr/bin/git");
    let ldd = std::process::Command::new("ldd")
        .arg(git)
        .output()
        .map_err(|e| format!("ldd /usr/bin/git (Debian packages git and libc-bin): {e}"))?;
    if !ldd.status.success() {
        return Err(format!(
            "ldd /usr/bin/git failed (is Debian's git installed?): {}",
            String::from_utf8_lossy(&ldd.stderr)
        ));
    }
    let mut files = vec![
        (git.to_path_buf(), "usr/bin/git".to_string()),
        (git.to_path_buf(), "usr/lib/git-core/git".to_string()),
    ];
    // "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x…)" and "/lib64/ld-linux-x86-64.so.2 (0x…)"
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(path) = path.filter(|p| p.starts_with('/')) {
            files.push((PathBuf::from(path), path.to_string()));
        }
    }
    let links: Vec<(String, String)> =
        ["git-upload-pack", "git-receive-pack", "git-upload-archive"]
            .iter()
            .flat_map(|helper| {
                [
                    (format!("usr/bin/{helper}"), "git".to_string()),
                    (format!("usr/lib/git-core/{helper}"), "git".to_string()),
                ]
            })
            .collect();
    let tar = busybox_rootfs_with(Path::new("/bin/busybox"), "git", &files, &links)
        .map_err(|e| format!("building the git image (needs busybox-static and git): {e}"))?;
    import_tar(docker, reference, tar).await
}

/// Imports a rootfs tar as `reference` (`repo:tag`), like `docker import`.
async fn import_tar(docker: &Docker, reference: &str, tar: Vec<u8>) -> Result<(), String> {
    let (repo, tag) = reference.split_once(':').unwrap_or((reference, "latest"));
    let options = CreateImageOptions {
        from_src: Some("-".into()),
        repo: Some(repo.into()),
        tag: Some(tag.into()),
        ..Default::default()
    };
    let mut stream = docker.create_image(Some(options), Some(bollard::body_full(tar.into())), None);
    while let Some(item) = stream.next().await {
        item.map_err(|e| format!("importing {reference}: {e}"))?;
    }
    Ok(())
}

/// Force-removes the containers that carry `label` (`key=value`) and satisfy `pick`, 4 at a time
/// (very wide force-removal has deadlocked Debian's dockerd). Returns how many were removed.
pub async fn remove_containers(
    docker: &Docker,
    label: &str,
    pick: impl Fn(&std::collections::HashMap<String, String>) -> bool,
) -> Result<usize, String> {
    use bollard::query_parameters::{ListContainersOptions, RemoveContainerOptions};
    let filters = std::collections::HashMap::from([("label".to_string(), vec![label.to_string()])]);
    let list = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .map_err(|e| format!("listing containers: {e}"))?;
    let ids: Vec<String> = list
        .into_iter()
        .filter(|c| c.labels.as_ref().is_some_and(&pick))
        .filter_map(|c| c.id)
        .collect();
    let removed = ids.len();
    let results: Vec<Result<(), String>> = futures::stream::iter(ids)
        .map(|id| async move {
            let options = RemoveContainerOptions {
                force: true,
                ..Default::default()
            };
            match docker.remove_container(&id, Some(options)).await {
                Ok(()) => Ok(()),
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => Ok(()),
                Err(e) => Err(format!("removing {id}: {e}")),
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>, String>>()?;
    Ok(removed)
}

/// `POST /api/v1/apply` of a YAML bundle to the wharf at `addr`; an error names the answer.
pub async fn apply_bundle(
    addr: std::net::SocketAddr,
    token: &str,
    yaml: String,
) -> Result<(), String> {
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/api/v1/apply"))
        .bearer_auth(token)
        .header("content-type", "application/yaml")
        .body(yaml)
        .send()
        .await
        .map_err(|e| format!("apply: {e}"))?;
    if response.status().is_success() {
        return Ok(());
    }
    let status = response.status();
    Err(format!(
        "apply answered {status}: {}",
        response.text().await.unwrap_or_default()
    ))
}

/// Every container (any state) carrying `label` (`key=value`).
pub async fn containers_with(
    docker: &Docker,
    label: &str,
) -> Vec<bollard::models::ContainerSummary> {
    use bollard::query_parameters::ListContainersOptions;
    let filters = std::collections::HashMap::from([("label".to_string(), vec![label.to_string()])]);
    docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .unwrap_or_default()
}

/// Whether a container is one a replacement set aside (`<name>.replaced-<id>`).
pub fn set_aside(c: &bollard::models::ContainerSummary) -> bool {
    c.names
        .iter()
        .flatten()
        .any(|name| name.contains(".replaced-"))
}

/// How many containers carry `label`.
pub async fn count_containers(docker: &Docker, label: &str) -> usize {
    containers_with(docker, label).await.len()
}

/// Waits until `n` Apps of `namespace` in `store` are Running, polling every 200 ms for at most
/// `limit`; returns how long it took, or an error saying how many ran.
pub async fn wait_running(
    store: &wharf::store::Store,
    namespace: &str,
    n: usize,
    limit: std::time::Duration,
) -> Result<std::time::Duration, String> {
    let started = std::time::Instant::now();
    loop {
        let running = store
            .list(wharf::spec::Kind::App, Some(namespace))
            .await
            .map_err(|e| format!("listing apps: {e}"))?
            .iter()
            .filter(|r| {
                r.app_status()
                    .is_some_and(|s| s.phase == wharf::spec::status::Phase::Running)
            })
            .count();
        if running == n {
            return Ok(started.elapsed());
        }
        if started.elapsed() > limit {
            return Err(format!(
                "{running} of {n} apps running after {}s",
                limit.as_secs()
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
