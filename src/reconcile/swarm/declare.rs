//! An App as the Swarm service wharf declares for it: the service name, the `ServiceSpec`
//! with its hash label, and the image pinned to a digest when one is known. Pure.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::reconcile::plan::{Desired, DesiredApp, volume_name};
use crate::runtime::labels;
use crate::runtime::swarm::{
    ServiceMode, ServiceMount, ServicePort, ServiceRestart, ServiceSpec, ServiceUpdateConfig,
};
use crate::spec::reference::canonical_reference;
use crate::spec::validate::{AppKey, Restart};
use crate::spec::wire::DesiredState;

pub use crate::runtime::swarm::labels::HASH_SERVICE as HASH_LABEL;

/// The service label naming the user the app belongs to (`spec.owner`).
pub const OWNER_LABEL: &str = "wharf.owner";

/// The service name of an app: `namespace_name` as `docker stack` names them, when that is a
/// valid service name (at most 63 letters, digits, `-` and `_`); else a shortened form with a
/// hash of the key, still unique.
pub fn service_name(key: &AppKey) -> String {
    let plain = format!("{}_{}", key.namespace, key.name);
    if plain.len() <= 63 && !plain.contains('.') {
        return plain;
    }
    let digest = Sha256::digest(format!("{}/{}", key.namespace, key.name).as_bytes());
    let suffix: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let mut head: String = plain.replace('.', "-").chars().take(54).collect();
    while head.ends_with(['-', '_']) {
        head.pop();
    }
    format!("{head}-{suffix}")
}

/// The service wharf declares for `app`, running `image` (the app's reference, pinned to a
/// digest when one is known: see `pinned_image`), with its hash label set.
pub fn declare(app: &DesiredApp, image: &str, instance: &str) -> ServiceSpec {
    let spec = &app.spec;
    let c = &spec.container;
    let s = &spec.swarm;
    let common = BTreeMap::from([
        (labels::INSTANCE.to_string(), instance.to_string()),
        (labels::NAMESPACE.to_string(), spec.key.namespace.clone()),
        (labels::APP.to_string(), spec.key.name.clone()),
        (labels::UID.to_string(), app.uid.clone()),
    ]);
    // The app's own labels and its owner go on the service (not on the task containers: a
    // change of them then replaces no task); `wharf.*` keys are wharf's alone.
    let mut service_labels: BTreeMap<String, String> = app
        .labels
        .iter()
        .filter(|(k, _)| !k.starts_with("wharf."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    service_labels.extend(common.clone());
    if let Some(owner) = &spec.owner {
        service_labels.insert(OWNER_LABEL.to_string(), owner.clone());
    }
    service_labels.insert(
        labels::MANAGED_BY.to_string(),
        labels::MANAGED_BY_VALUE.to_string(),
    );
    let mut mounts: Vec<ServiceMount> = c
        .volumes
        .iter()
        .map(|v| ServiceMount {
            target: v.mount_path.clone(),
            source: volume_name(&spec.key.namespace, &v.name),
            bind: false,
            read_only: v.read_only,
        })
        .chain(c.binds.iter().map(|b| ServiceMount {
            target: b.mount_path.clone(),
            source: b.host_path.clone(),
            bind: true,
            read_only: b.read_only,
        }))
        .collect();
    mounts.sort();
    let mut ports: Vec<ServicePort> = c
        .ports
        .iter()
        .map(|p| ServicePort {
            target: p.container_port,
            protocol: p.protocol,
            published: p.host_port,
            host_mode: s.host_mode_ports.contains(&(p.container_port, p.protocol)),
        })
        .collect();
    ports.sort();
    let (condition, max_attempts) = match spec.limits.restart {
        Restart::No => ("none", None),
        Restart::Always | Restart::UnlessStopped => ("any", None),
        Restart::OnFailure { max_retries } => (
            "on-failure",
            (max_retries > 0).then_some(u64::from(max_retries)),
        ),
    };
    let mode = if s.global {
        ServiceMode::Global
    } else if spec.state == DesiredState::Stopped {
        ServiceMode::Replicated { replicas: 0 }
    } else {
        ServiceMode::Replicated {
            replicas: s.replicas,
        }
    };
    let mut service = ServiceSpec {
        name: service_name(&spec.key),
        labels: service_labels,
        container_labels: common,
        image: image.to_string(),
        entrypoint: c.entrypoint.clone(),
        command: c.command.clone(),
        env: c.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        working_dir: c.working_dir.clone(),
        mounts,
        healthcheck: c.healthcheck.clone(),
        stop_grace_ns: c
            .stop_grace_seconds
            .map(|g| i64::try_from(g.saturating_mul(1_000_000_000)).unwrap_or(i64::MAX)),
        cap_add: c.cap_add.clone(),
        cap_drop: c.cap_drop.clone(),
        memory: spec.limits.memory,
        nano_cpus: spec.limits.nano_cpus,
        pids: spec.limits.pids,
        reserve_memory: s.reserve_memory,
        reserve_nano_cpus: s.reserve_nano_cpus,
        restart: ServiceRestart {
            condition,
            max_attempts,
            delay_ns: s.restart_delay_ns,
        },
        constraints: s.constraints.clone(),
        spread: s.spread.clone(),
        max_replicas_per_node: s.max_replicas_per_node,
        mode,
        update: ServiceUpdateConfig {
            parallelism: s.update.parallelism,
            delay_ns: s.update.delay_ns,
            order: s.update.order,
            failure_action: s.update.failure_action,
            monitor_ns: s.update.monitor_ns,
            max_failure_ratio: s.update.max_failure_ratio,
        },
        ports,
    };
    let hash = hash_of(&service);
    service.labels.insert(HASH_LABEL.to_string(), hash);
    service
}

/// The image a service runs: the app's reference pinned to the registry digest its Image
/// object last saw (an `updateInterval` check or `images update-all`), so every node runs the
/// same image and a new digest rolls the service; else the digest the service already runs
/// for the same reference (a restart of wharf rolls nothing); else the reference as written
/// (each node pulls it). A reference that names a digest is used as it is.
pub fn pinned_image(image: &str, desired: &Desired, running: Option<&str>) -> String {
    if image.contains('@') {
        return image.to_string();
    }
    let canonical = canonical_reference(image).ok();
    let checked = desired
        .images
        .values()
        .find(|i| !i.deleting && Some(&i.spec.canonical) == canonical.as_ref())
        .and_then(|i| i.remote_digest.clone());
    if let Some(digest) = checked {
        return format!("{image}@{digest}");
    }
    match running.and_then(|r| r.split_once('@')) {
        Some((base, digest)) if base == image => format!("{image}@{digest}"),
        _ => image.to_string(),
    }
}

/// The hash of a declared service (its labels hold it, so it is taken without them).
fn hash_of(spec: &ServiceSpec) -> String {
    let mut bare = spec.clone();
    bare.labels.remove(HASH_LABEL);
    // Plain data (strings, numbers, maps): serialising it cannot fail.
    let bytes = serde_json::to_vec(&bare).unwrap_or_default();
    Sha256::digest(&bytes)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_pinned_to_the_digest_last_seen() {
        use crate::reconcile::plan::DesiredImage;
        use crate::spec::ImageSpec;
        use crate::spec::image::PullPolicy;
        let key = AppKey {
            namespace: String::new(),
            name: "app".into(),
        };
        let mut desired = Desired::default();
        let digest = format!("sha256:{}", "a".repeat(64));
        desired.images.insert(
            key.clone(),
            DesiredImage {
                uid: "u".into(),
                generation: 1,
                spec: ImageSpec {
                    key,
                    reference: "registry.test:5000/team/app:2".into(),
                    canonical: "registry.test:5000/team/app:2".into(),
                    pull_policy: PullPolicy::IfNotPresent,
                    update_interval: None,
                    credentials: None,
                    max_unavailable: None,
                },
                deleting: false,
                hold_until: None,
                pulled_generation: None,
                check_due: false,
                remote_digest: Some(digest.clone()),
            },
        );
        let image = "registry.test:5000/team/app:2";
        assert_eq!(
            pinned_image(image, &desired, None),
            format!("{image}@{digest}")
        );
        // A digest already in the reference is used as it is.
        let named = format!("{image}@sha256:{}", "b".repeat(64));
        assert_eq!(pinned_image(&named, &desired, None), named);
        // No Image object: the digest the service runs, else the reference as written.
        let other = "busybox:1.36";
        let running = format!("{other}@sha256:{}", "c".repeat(64));
        assert_eq!(pinned_image(other, &desired, Some(&running)), running);
        assert_eq!(
            pinned_image(other, &desired, Some("busybox:1.35@sha256:x")),
            other
        );
        assert_eq!(pinned_image(other, &desired, None), other);
    }

    fn desired_app(yaml: &str) -> DesiredApp {
        let docs = crate::spec::parse::parse_documents(yaml, crate::spec::Format::Yaml, None)
            .expect("parses");
        let crate::spec::Document::App(doc) = &docs[0].document else {
            panic!("an App")
        };
        let spec = crate::spec::validate_app(doc).expect("valid");
        DesiredApp {
            uid: "u1".into(),
            generation: 1,
            hashes: spec.hashes(),
            spec,
            deleting: false,
            hold_until: None,
            repairs: 0,
            had_container: false,
            rolled_back: None,
            host_port_root: None,
            blocked_on_image: None,
            labels: doc.metadata.labels.clone(),
        }
    }

    #[test]
    fn an_app_becomes_a_service() {
        let app = desired_app(
            "apiVersion: wharf/v1\nkind: App\nmetadata: {name: web, namespace: demo, labels: {team: astro, wharf.uid: forged}}\nspec:\n  image: busybox:1\n  owner: john\n  replicas: 3\n  state: running\n  env: {B: 2, A: 1}\n  resources: {memory: 64Mi, reservations: {cpus: 0.5}}\n  restartPolicy: {name: on-failure, maxRetries: 3}\n  ports: [{containerPort: 80, hostPort: 8080, mode: host}, \"9090:90/udp\"]\n",
        );
        let s = declare(&app, "busybox:1", "main");
        assert_eq!(s.name, "demo_web");
        assert_eq!(s.labels["team"], "astro");
        assert_eq!(
            s.labels[labels::UID],
            "u1",
            "wharf's labels cannot be forged"
        );
        assert_eq!(s.labels[OWNER_LABEL], "john");
        assert!(s.labels.contains_key(HASH_LABEL));
        assert!(!s.container_labels.contains_key("team"));
        assert!(!s.container_labels.contains_key(labels::MANAGED_BY));
        assert_eq!(s.env, ["A=1", "B=2"]);
        assert_eq!(s.mode, ServiceMode::Replicated { replicas: 3 });
        assert_eq!(s.memory, Some(64 << 20));
        assert_eq!(s.reserve_nano_cpus, Some(500_000_000));
        assert_eq!(s.restart.condition, "on-failure");
        assert_eq!(s.restart.max_attempts, Some(3));
        let host: Vec<(u16, bool)> = s.ports.iter().map(|p| (p.target, p.host_mode)).collect();
        assert_eq!(host, [(80, true), (90, false)]);
        // The hash moves with the spec, not with nothing.
        assert_eq!(s, declare(&app, "busybox:1", "main"));
        let stopped = desired_app(
            "apiVersion: wharf/v1\nkind: App\nmetadata: {name: web, namespace: demo}\nspec: {image: busybox:1, replicas: 3, state: stopped}\n",
        );
        let s2 = declare(&stopped, "busybox:1", "main");
        assert_eq!(s2.mode, ServiceMode::Replicated { replicas: 0 });
        assert_ne!(s2.labels[HASH_LABEL], s.labels[HASH_LABEL]);
    }

    #[test]
    fn service_names_are_readable_and_valid() {
        let key = |ns: &str, name: &str| AppKey {
            namespace: ns.into(),
            name: name.into(),
        };
        assert_eq!(service_name(&key("demo", "web")), "demo_web");
        let dotted = service_name(&key("demo", "web.v2"));
        assert!(dotted.starts_with("demo_web-v2-"), "{dotted}");
        assert_ne!(dotted, service_name(&key("demo", "web-v2")));
        let long = service_name(&key(&"n".repeat(63), &"a".repeat(63)));
        assert!(long.len() <= 63, "{long}");
    }
}
