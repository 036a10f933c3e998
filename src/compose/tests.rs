//! Compose files shaped like those of popular public projects (written for these tests):
//! every produced document validates, and every key left behind is reported.

use std::path::Path;

use serde_json::{Value, json};

use super::*;

fn solo(namespace: &str) -> Options {
    Options {
        namespace: namespace.into(),
        mode: Mode::Solo,
    }
}

/// Converts and validates every document as `wharf apply` would; returns the Apps by name.
fn convert_valid(
    text: &str,
    vars: &Vars,
    dir: &Path,
    options: &Options,
) -> (BTreeMap<String, Value>, Vec<Value>, Vec<Warning>) {
    let converted = convert(text, vars, dir, options).expect("converts");
    let docs: Vec<Value> = converted
        .services
        .iter()
        .flat_map(|(_, docs)| docs.clone())
        .collect();
    let parsed = crate::spec::parse::parse_values(docs.clone()).expect("parses");
    if let Err(errors) = crate::spec::validate_bundle(parsed, None) {
        panic!(
            "invalid documents: {:?}\n{}",
            errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            serde_json::to_string_pretty(&docs).unwrap_or_default()
        );
    }
    let apps = docs
        .iter()
        .filter(|d| d["kind"] == "App")
        .map(|d| {
            (
                d["metadata"]["name"].as_str().unwrap_or("").to_string(),
                d.clone(),
            )
        })
        .collect();
    let images = docs.into_iter().filter(|d| d["kind"] == "Image").collect();
    (apps, images, converted.warnings)
}

fn warned(warnings: &[Warning], path: &str) -> bool {
    warnings.iter().any(|w| w.path == path)
}

#[test]
fn wordpress_with_mysql() {
    let text = r#"
services:
  db:
    image: mysql:8.0
    command: '--default-authentication-plugin=mysql_native_password'
    volumes:
      - db_data:/var/lib/mysql
    restart: always
    environment:
      - MYSQL_ROOT_PASSWORD=somewordpress
      - MYSQL_DATABASE=wordpress
    expose:
      - 3306
  wordpress:
    depends_on:
      - db
    image: wordpress:latest
    ports:
      - "8000:80"
    restart: always
    environment:
      WORDPRESS_DB_HOST: db:3306
      WORDPRESS_DB_NAME: wordpress
volumes:
  db_data: {}
"#;
    let (apps, images, warnings) =
        convert_valid(text, &Vars::default(), Path::new("/srv/wp"), &solo("blog"));
    let db = &apps["db"]["spec"];
    assert_eq!(apps["db"]["metadata"]["namespace"], "blog");
    assert_eq!(
        db["command"],
        json!(["--default-authentication-plugin=mysql_native_password"])
    );
    assert_eq!(
        db["volumes"],
        json!([{"name": "db_data", "mountPath": "/var/lib/mysql"}])
    );
    assert_eq!(db["env"]["MYSQL_DATABASE"], "wordpress");
    assert_eq!(db["ports"], json!([{"containerPort": 3306}]));
    assert_eq!(db["restartPolicy"], json!({"name": "always"}));
    let wp = &apps["wordpress"]["spec"];
    assert_eq!(
        wp["ports"],
        json!([{"containerPort": 80, "hostPort": 8000}])
    );
    assert_eq!(wp["env"]["WORDPRESS_DB_HOST"], "db:3306");
    assert!(images.is_empty());
    assert!(
        warned(&warnings, "services.wordpress.depends_on"),
        "{warnings:?}"
    );
    assert_eq!(warnings.len(), 1, "{warnings:?}");
}

#[test]
fn gitea_with_variables_binds_and_a_health_check() {
    let text = r#"
networks:
  gitea:
    external: false
services:
  server:
    image: gitea/gitea:${GITEA_VERSION:-1.22}
    container_name: gitea
    environment:
      - USER_UID=1000
      - GITEA__database__PASSWD=${DB_PASSWORD:?set DB_PASSWORD}
      - GITEA__server__ROOT_URL=https://${DOMAIN}/
    restart: unless-stopped
    networks:
      - gitea
    volumes:
      - ./gitea:/data
      - /etc/timezone:/etc/timezone:ro
      - type: bind
        source: /etc/localtime
        target: /etc/localtime
        read_only: true
    ports:
      - "127.0.0.1:3000:3000"
      - target: 22
        published: 2222
        protocol: tcp
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost:3000/api/healthz"]
      interval: 30s
      timeout: 5s
      retries: 3
      start_period: 20s
    stop_grace_period: 1m
"#;
    let v = Vars::from_pairs(&[("DB_PASSWORD", "s3cret"), ("DOMAIN", "git.example.org")]);
    let (apps, _, warnings) = convert_valid(text, &v, Path::new("/srv/gitea"), &solo("git"));
    let s = &apps["server"]["spec"];
    assert_eq!(s["image"], "gitea/gitea:1.22", "default taken");
    assert_eq!(s["env"]["GITEA__database__PASSWD"], "s3cret");
    assert_eq!(
        s["env"]["GITEA__server__ROOT_URL"],
        "https://git.example.org/"
    );
    assert_eq!(
        s["volumes"],
        json!([
            {"hostPath": "/srv/gitea/gitea", "mountPath": "/data"},
            {"hostPath": "/etc/timezone", "mountPath": "/etc/timezone", "readOnly": true},
            {"hostPath": "/etc/localtime", "mountPath": "/etc/localtime", "readOnly": true},
        ])
    );
    assert_eq!(
        s["ports"],
        json!([
            {"containerPort": 3000, "hostPort": 3000, "hostIP": "127.0.0.1"},
            {"containerPort": 22, "hostPort": 2222, "protocol": "tcp"},
        ])
    );
    assert_eq!(s["healthcheck"]["cmd"][0], "CMD");
    assert_eq!(s["healthcheck"]["startPeriod"], "20s");
    assert_eq!(s["stopGracePeriod"], "1m");
    assert_eq!(s["restartPolicy"], json!({"name": "unless-stopped"}));
    for path in [
        "networks",
        "services.server.container_name",
        "services.server.networks",
    ] {
        assert!(warned(&warnings, path), "{path}: {warnings:?}");
    }

    let missing = convert(
        text,
        &Vars::from_pairs(&[("DOMAIN", "x")]),
        Path::new("/srv"),
        &solo("git"),
    );
    assert!(
        missing
            .expect_err("DB_PASSWORD is required")
            .contains("set DB_PASSWORD"),
        "the file's own message"
    );
}

#[test]
fn traefik_and_a_scaled_whoami_in_each_mode() {
    let text = r#"
services:
  traefik:
    image: traefik:v3.1
    command:
      - --providers.docker=true
      - --entrypoints.web.address=:80
    ports:
      - 80:80
      - "[::1]:8080:8080"
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock:ro,z
    labels:
      traefik.enable: "true"
      com.example.team: edge
  whoami:
    image: traefik/whoami
    pull_policy: always
    labels:
      - traefik.http.routers.whoami.rule=Host(`whoami.localhost`)
    deploy:
      replicas: 3
      resources:
        limits: {cpus: '0.50', memory: 50M, pids: 100}
        reservations: {cpus: '0.25', memory: 20M}
      placement:
        constraints: [node.role == worker]
        preferences: [{spread: node.labels.zone}]
      update_config: {parallelism: 2, delay: 10s, order: start-first, failure_action: rollback}
      restart_policy: {condition: on-failure, max_attempts: 3}
"#;
    let (apps, images, warnings) =
        convert_valid(text, &Vars::default(), Path::new("/srv"), &solo("edge"));
    let t = &apps["traefik"];
    assert_eq!(t["spec"]["command"][1], "--entrypoints.web.address=:80");
    assert_eq!(
        t["spec"]["ports"][1],
        json!({"containerPort": 8080, "hostPort": 8080, "hostIP": "::1"})
    );
    assert_eq!(t["spec"]["volumes"][0]["readOnly"], true);
    assert_eq!(t["metadata"]["labels"]["com.example.team"], "edge");
    assert!(
        warned(&warnings, "services.traefik.volumes[0]"),
        "the z option: {warnings:?}"
    );
    let w = &apps["whoami"]["spec"];
    assert_eq!(
        w["resources"],
        json!({"cpus": 0.5, "memory": "50m", "pids": 100})
    );
    assert!(w.get("replicas").is_none() && w.get("placement").is_none());
    assert_eq!(
        w["restartPolicy"],
        json!({"name": "on-failure", "maxRetries": 3})
    );
    for path in [
        "services.whoami.deploy.replicas",
        "services.whoami.deploy.placement",
        "services.whoami.deploy.update_config",
        "services.whoami.deploy.resources.reservations",
    ] {
        assert!(warned(&warnings, path), "{path}: {warnings:?}");
    }
    assert!(
        !warned(
            &warnings,
            "services.whoami.labels.traefik.http.routers.whoami.rule"
        ),
        "a dotted label key is kept"
    );
    assert_eq!(images.len(), 1);
    assert_eq!(
        images[0]["spec"],
        json!({"ref": "traefik/whoami", "pullPolicy": "Always"})
    );
    assert_eq!(images[0]["metadata"]["name"], "traefik-whoami");

    let swarm = Options {
        namespace: "edge".into(),
        mode: Mode::Swarm,
    };
    let (apps, _, _) = convert_valid(text, &Vars::default(), Path::new("/srv"), &swarm);
    let w = &apps["whoami"]["spec"];
    assert_eq!(w["replicas"], 3);
    assert_eq!(w["placement"]["constraints"][0], "node.role == worker");
    assert_eq!(
        w["placement"]["preferences"][0]["spread"],
        "node.labels.zone"
    );
    assert_eq!(
        w["update"],
        json!({"parallelism": 2, "delay": "10s", "order": "start-first", "failureAction": "rollback"})
    );
    assert_eq!(
        w["resources"]["reservations"],
        json!({"cpus": 0.25, "memory": "20m"})
    );
}

#[test]
fn nextcloud_with_env_files_limits_and_what_cannot_come_along() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("db.env"),
        "POSTGRES_DB=nextcloud\nPOSTGRES_USER=nc\nPOSTGRES_PASSWORD=from-file\n",
    )
    .expect("env file");
    let text = r#"
services:
  app:
    build: ./app
  db:
    image: postgres:16-alpine
    env_file:
      - db.env
      - path: optional.env
        required: false
    environment:
      POSTGRES_PASSWORD: overrides-file
    mem_limit: 1gb
    memswap_limit: 2gb
    cpus: 1.5
    pids_limit: 200
    tmpfs: /run
    user: "999"
    working_dir: /var/lib/postgresql
    healthcheck:
      test: pg_isready -U nc
      interval: 10s
    volumes:
      - /var/lib/postgresql/data
    ports:
      - "5432"
      - "6000-6002:7000-7002/udp"
secrets:
  db_password:
    file: ./secret.txt
"#;
    let (apps, _, warnings) = convert_valid(text, &Vars::default(), dir.path(), &solo("cloud"));
    assert!(
        !apps.contains_key("app"),
        "a service with only `build` is skipped"
    );
    assert!(warned(&warnings, "services.app"), "{warnings:?}");
    let db = &apps["db"]["spec"];
    assert_eq!(db["env"]["POSTGRES_DB"], "nextcloud");
    assert_eq!(
        db["env"]["POSTGRES_PASSWORD"], "overrides-file",
        "environment wins"
    );
    assert_eq!(
        db["resources"],
        json!({"memory": "1g", "memorySwap": "2g", "cpus": 1.5, "pids": 200})
    );
    assert_eq!(
        db["healthcheck"],
        json!({"cmd": ["CMD-SHELL", "pg_isready -U nc"], "interval": "10s"})
    );
    assert_eq!(db["workingDir"], "/var/lib/postgresql");
    assert_eq!(
        db["volumes"],
        json!([{"name": "db-0", "mountPath": "/var/lib/postgresql/data"}])
    );
    assert_eq!(db["ports"][0], json!({"containerPort": 5432}));
    assert_eq!(
        db["ports"][1],
        json!({"containerPort": 7000, "hostPort": 6000, "protocol": "udp"})
    );
    assert_eq!(
        db["ports"][3],
        json!({"containerPort": 7002, "hostPort": 6002, "protocol": "udp"})
    );
    for path in [
        "services.db.tmpfs",
        "services.db.user",
        "services.db.volumes[0]",
        "services.db.ports[0]",
        "secrets",
    ] {
        assert!(warned(&warnings, path), "{path}: {warnings:?}");
    }

    let missing = text.replace("- db.env", "- absent.env");
    let err = convert(&missing, &Vars::default(), dir.path(), &solo("cloud"))
        .expect_err("a required env file");
    assert!(err.contains("absent.env"), "{err}");
}

#[test]
fn bad_ports_and_unknown_restart_policies_are_reported_not_guessed() {
    let text = r#"
services:
  web:
    image: nginx:1.27
    restart: sometimes
    ports:
      - "80:80:80:80"
      - "1-1000:1-1000"
"#;
    let (apps, _, warnings) = convert_valid(text, &Vars::default(), Path::new("/"), &solo("x"));
    assert!(apps["web"]["spec"].get("ports").is_none());
    assert!(apps["web"]["spec"].get("restartPolicy").is_none());
    for path in [
        "services.web.restart",
        "services.web.ports[0]",
        "services.web.ports[1]",
    ] {
        assert!(warned(&warnings, path), "{path}: {warnings:?}");
    }
}
