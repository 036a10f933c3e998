//! Solo and swarm mode, and which App fields each refuses.
//!
//! The same App documents run in both modes, but some fields mean something in one only:
//! replicas and placement need Swarm; block-device throttles, devices and port areas need one
//! engine's containers. A field the mode cannot honour is refused at apply time, naming the
//! field and the mode it belongs to — never silently dropped. Pure: the server says which mode
//! it runs in.

use schemars::JsonSchema;
use std::fmt;

use serde::Serialize;

use super::SpecError;
use super::domain::AppSpec;
use super::wire::DesiredState;

/// What wharf drives: one engine's containers, or a swarm's services.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, JsonSchema, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Solo,
    Swarm,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Solo => "solo",
            Mode::Swarm => "swarm",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "solo" => Some(Mode::Solo),
            "swarm" => Some(Mode::Swarm),
            _ => None,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every field of `app` that `mode` cannot honour, each named.
pub fn check(app: &AppSpec, mode: Mode) -> Vec<SpecError> {
    match mode {
        Mode::Solo => app
            .swarm
            .fields_set
            .iter()
            .map(|field| {
                let what = if field == "spec.replicas" {
                    "solo mode runs one container per app; more replicas need swarm mode (wharf serve --mode swarm)"
                } else {
                    "is swarm only (wharf serve --mode swarm); solo mode cannot honour it"
                };
                SpecError::field(field.clone(), what)
            })
            .collect(),
        Mode::Swarm => {
            let c = &app.container;
            let mut fields: Vec<String> = Vec::new();
            if !c.blkio.is_empty() {
                fields.push("spec.resources.blkio".into());
            }
            if !c.devices.is_empty() {
                fields.push("spec.devices".into());
            }
            if app.port_area.is_some() {
                fields.push("spec.portArea".into());
            }
            if app.state == DesiredState::Paused {
                fields.push("spec.state: paused".into());
            }
            if c.host_pid {
                fields.push("spec.hostPID".into());
            }
            if c.host_ipc {
                fields.push("spec.hostIPC".into());
            }
            if c.privileged {
                fields.push("spec.privileged".into());
            }
            if c.host_network {
                fields.push("spec.hostNetwork".into());
            }
            if app.limits.memory_swap.is_some() && app.limits.memory_swap != app.limits.memory {
                fields.push("spec.resources.memorySwap".into());
            }
            for p in &c.ports {
                if p.host_ip.is_some() {
                    fields.push(format!("spec.ports ({}/{}).hostIP", p.container_port, p.protocol));
                }
            }
            fields
                .into_iter()
                .map(|field| {
                    SpecError::field(
                        field,
                        "is solo only: a Swarm service has no such setting (wharf serve --mode solo)",
                    )
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse::{Format, parse_documents};
    use crate::spec::{Document, validate_app};

    fn app(yaml: &str) -> AppSpec {
        let doc = parse_documents(yaml, Format::Yaml, None).expect("parses");
        let Document::App(d) = &doc[0].document else {
            panic!("an App")
        };
        validate_app(d).expect("valid")
    }

    const HEAD: &str =
        "apiVersion: wharf/v1\nkind: App\nmetadata: {name: web}\nspec:\n  image: busybox\n";

    #[test]
    fn solo_refuses_swarm_fields_by_name() {
        let a = app(&format!(
            "{HEAD}  replicas: 3\n  placement: {{constraints: [node.role==worker]}}\n  update: {{parallelism: 2}}\n"
        ));
        let fields: Vec<_> = check(&a, Mode::Solo)
            .into_iter()
            .filter_map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            ["spec.replicas", "spec.placement", "spec.update.parallelism"]
        );
        assert!(check(&a, Mode::Swarm).is_empty());
        // One replica is what solo mode runs anyway.
        assert!(check(&app(&format!("{HEAD}  replicas: 1\n")), Mode::Solo).is_empty());
        // minReadySeconds means something in both modes.
        assert!(
            check(
                &app(&format!("{HEAD}  update: {{minReadySeconds: 9}}\n")),
                Mode::Solo
            )
            .is_empty()
        );
    }

    #[test]
    fn swarm_refuses_solo_fields_by_name() {
        let a = app(&format!(
            "{HEAD}  state: paused\n  portArea: {{size: 10}}\n  hostPID: true\n  resources: {{blkio: {{deviceReadBps: [{{path: /dev/sda, rate: 1Mi}}]}}}}\n"
        ));
        let errors = check(&a, Mode::Swarm);
        let fields: Vec<_> = errors.iter().filter_map(|e| e.field.clone()).collect();
        assert_eq!(
            fields,
            [
                "spec.resources.blkio",
                "spec.portArea",
                "spec.state: paused",
                "spec.hostPID"
            ]
        );
        assert!(errors[0].message.contains("solo only"));
    }

    #[test]
    fn swarm_settings_are_read() {
        let a = app(&format!(
            "{HEAD}  replicas: 3\n  update: {{parallelism: 2, order: start-first, failureAction: pause, delay: 2s, maxFailureRatio: 0.5, minReadySeconds: 7}}\n  restartPolicy: {{name: on-failure, maxRetries: 3, delay: 1s}}\n"
        ));
        let s = &a.swarm;
        assert_eq!(s.replicas, 3);
        assert_eq!(s.update.parallelism, 2);
        assert_eq!(s.update.monitor_ns, 7_000_000_000);
        assert_eq!(s.update.delay_ns, 2_000_000_000);
        assert_eq!(s.restart_delay_ns, Some(1_000_000_000));
        // The solo hashes do not move with swarm-only settings.
        let plain = app(HEAD);
        assert_eq!(
            plain.hashes().recreate,
            app(&format!("{HEAD}  replicas: 1\n")).hashes().recreate
        );
    }
}
