//! A real registry for image tests: Debian's `docker-registry` started per test on a free
//! loopback port (the engine treats loopback registries as insecure-allowed), with its storage in
//! a temporary directory and, optionally, htpasswd authentication.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{PushImageOptions, RemoveImageOptions, TagImageOptions};
use futures::StreamExt;

const BINARY: &str = "/usr/bin/docker-registry";

pub struct Registry {
    /// `127.0.0.1:PORT`
    pub addr: String,
    pub credentials: Option<(String, String)>,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _already_gone_is_fine = self.child.kill();
        let _reaped = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Registry {
    /// Starts a registry; with `credentials`, every request needs them (htpasswd, bcrypt).
    pub async fn start(credentials: Option<(&str, &str)>) -> Self {
        assert!(
            std::path::Path::new(BINARY).exists(),
            "image tests need a registry: install Debian's docker-registry package ({BINARY}); .ci/run does"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = credentials {
            let hash = bcrypt::hash(password, 5).expect("bcrypt");
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{user}:{hash}\n")).expect("htpasswd");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: wharf-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("registry config");
        let child = Command::new(BINARY)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry starts");
        let registry = Self {
            addr: addr.clone(),
            credentials: credentials.map(|(u, p)| (u.to_string(), p.to_string())),
            child,
            _dir: dir,
        };
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if http.get(format!("http://{addr}/v2/")).send().await.is_ok() {
                return registry;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("docker-registry did not answer on {addr}");
    }

    /// `ADDR/repo:tag`.
    pub fn reference(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.addr)
    }

    fn docker_credentials(&self) -> Option<DockerCredentials> {
        self.credentials.as_ref().map(|(u, p)| DockerCredentials {
            username: Some(u.clone()),
            password: Some(p.clone()),
            serveraddress: Some(self.addr.clone()),
            ..Default::default()
        })
    }

    /// Pushes the local image `local` as `repo:tag` here, then drops the local tag so a later
    /// use of the reference really goes to the registry. Returns the pushed reference.
    pub async fn push(&self, docker: &Docker, local: &str, repo_tag: &str) -> String {
        let reference = self.reference(repo_tag);
        let (repo, tag) = reference.rsplit_once(':').expect("repo:tag");
        docker
            .tag_image(
                local,
                Some(TagImageOptions {
                    repo: Some(repo.to_string()),
                    tag: Some(tag.to_string()),
                }),
            )
            .await
            .expect("tag");
        let mut stream = docker.push_image(
            repo,
            Some(PushImageOptions {
                tag: Some(tag.to_string()),
                ..Default::default()
            }),
            self.docker_credentials(),
        );
        while let Some(item) = stream.next().await {
            item.unwrap_or_else(|e| panic!("pushing {reference}: {e}"));
        }
        self.untag(docker, &reference).await;
        reference
    }

    /// Removes a tag from the engine (not the image's other tags or layers).
    pub async fn untag(&self, docker: &Docker, reference: &str) {
        match docker
            .remove_image(
                reference,
                Some(RemoveImageOptions {
                    force: false,
                    noprune: true,
                    platforms: None,
                }),
                None,
            )
            .await
        {
            Ok(_) => {}
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => panic!("untagging {reference}: {e}"),
        }
    }

    /// Removes every tag of this registry from the engine (images pulled during the test).
    pub async fn finish(self, docker: &Docker) {
        let images = docker
            .list_images(None::<bollard::query_parameters::ListImagesOptions>)
            .await
            .unwrap_or_default();
        let prefix = format!("{}/", self.addr);
        for image in images {
            for tag in image.repo_tags.iter().filter(|t| t.starts_with(&prefix)) {
                let _best_effort_the_containers_may_hold_it = docker
                    .remove_image(
                        tag,
                        Some(RemoveImageOptions {
                            force: true,
                            noprune: true,
                            platforms: None,
                        }),
                        None,
                    )
                    .await;
            }
        }
    }
}
