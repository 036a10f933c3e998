//! The swarm executor: runs one app's (or node's) service steps in order through the `Swarm`
//! trait, records every outcome as an event, keeps the backoff; and the forced update behind
//! restart and hard reset. Decides nothing.

use std::sync::Arc;

use tokio::time::Instant;

use super::HASH_LABEL;
use super::declare::service_name;
use super::plan::{ServiceAction, ServicePlan};
use crate::images::resolve_credentials;
use crate::reconcile::controller::Controller;
use crate::reconcile::execute::{ErrorClass, ExecError};
use crate::reconcile::memory::Failure;
use crate::runtime::swarm::Swarm;
use crate::runtime::{RegistryCredentials, RuntimeError, labels};
use crate::spec::image::CredentialsRef;
use crate::spec::validate::AppKey;
use crate::store::{EventType, ObjectRecord};

impl Controller {
    /// Runs one app's (or node's) service steps, records each outcome as an event, and keeps
    /// the backoff.
    pub(super) async fn swarm_work(
        self: Arc<Self>,
        swarm: Arc<dyn Swarm>,
        key: AppKey,
        record: Option<ObjectRecord>,
        service_plan: ServicePlan,
        credentials: Option<CredentialsRef>,
    ) {
        let mut error: Option<(String, ExecError)> = None;
        for step in &service_plan.steps {
            let result = {
                let _permit = self.ops.acquire().await.ok();
                self.run_step(swarm.as_ref(), &step.action, credentials.as_ref())
                    .await
            };
            let verb = step.action.verb();
            match result {
                Ok(detail) => {
                    let message = if detail.is_empty() {
                        step.reason.clone()
                    } else {
                        format!("{detail}: {}", step.reason)
                    };
                    tracing::info!(app = %key, "{verb} {message}");
                    if let Some(record) = &record
                        && !matches!(step.action, ServiceAction::Forget { .. })
                    {
                        self.event(record, EventType::Normal, verb, &message).await;
                    }
                    if let (
                        ServiceAction::Create { spec } | ServiceAction::Update { spec, .. },
                        Some(uid),
                    ) = (&step.action, &service_plan.uid)
                        && let Some(m) = self.memory().get_mut(uid)
                    {
                        m.attempted = spec.labels.get(HASH_LABEL).cloned();
                    }
                }
                Err(e) => {
                    let message = format!("{verb} failed ({}): {e}", step.reason);
                    tracing::warn!(app = %key, "{message}");
                    if let Some(record) = &record {
                        self.event(record, EventType::Warning, e.reason(), &message)
                            .await;
                    }
                    error = Some((message, e));
                    break;
                }
            }
        }
        if let Some((_, ExecError::Runtime(_))) = &error {
            self.metrics.docker_errors.inc();
        }
        let now = Instant::now();
        if let Some(uid) = &service_plan.uid
            && let Some(m) = self.memory().get_mut(uid)
        {
            match error {
                Some((message, e)) => {
                    m.failure = Some(Failure {
                        generation: m.generation,
                        reason: e.reason().to_string(),
                        message,
                    });
                    match e.class() {
                        ErrorClass::Transient => m.hold(now),
                        ErrorClass::Permanent => m.block(None, now),
                    }
                }
                None => m.failure = None,
            }
        }
        self.release(&key);
        self.observed.notify_one();
    }

    async fn run_step(
        &self,
        swarm: &dyn Swarm,
        action: &ServiceAction,
        credentials: Option<&CredentialsRef>,
    ) -> Result<String, ExecError> {
        let registry = |image: &str| -> Result<Option<RegistryCredentials>, ExecError> {
            credentials
                .map(|c| resolve_credentials(c, image))
                .transpose()
                .map_err(|m| {
                    ExecError::Runtime(RuntimeError::Engine {
                        op: "registry credentials",
                        status: 400,
                        message: m,
                    })
                })
        };
        match action {
            ServiceAction::Create { spec } => {
                let auth = registry(&spec.image)?;
                let id = swarm.create_service(spec, auth.as_ref()).await?;
                Ok(format!("service {} ({})", spec.name, short(&id)))
            }
            ServiceAction::Update {
                id,
                version,
                spec,
                force_update,
            } => {
                let auth = registry(&spec.image)?;
                let warnings = swarm
                    .update_service(id, *version, spec, *force_update, auth.as_ref())
                    .await?;
                for w in &warnings {
                    tracing::info!(service = %spec.name, "the engine says: {w}");
                }
                Ok(format!("service {}", spec.name))
            }
            ServiceAction::Remove { id, name } => match swarm.remove_service(id).await {
                Ok(()) | Err(RuntimeError::NotFound(_)) => Ok(format!("service {name}")),
                Err(e) => Err(e.into()),
            },
            ServiceAction::Forget { uid } => {
                self.store.forget(uid).await?;
                Ok(String::new())
            }
            ServiceAction::UpdateNode {
                id,
                version,
                update,
            } => {
                swarm.update_node(id, *version, update).await?;
                Ok(format!("node {}", short(id)))
            }
        }
    }

    /// Restart and hard reset in swarm mode: a forced update replaces every task, following the
    /// app's update settings.
    pub(in crate::reconcile) async fn swarm_replace_tasks(
        &self,
        swarm: &dyn Swarm,
        record: &ObjectRecord,
    ) -> Result<String, RuntimeError> {
        let services = swarm.services(&self.config.instance).await?;
        let service = services
            .iter()
            .filter(|s| s.spec.labels.get(labels::UID) == Some(&record.uid))
            .min_by_key(|s| s.spec.name != service_name(&record.key))
            .ok_or_else(|| {
                RuntimeError::Conflict(format!("app {} has no service yet", record.key))
            })?;
        swarm
            .update_service(
                &service.id,
                service.version,
                &service.spec,
                service.force_update + 1,
                None,
            )
            .await?;
        Ok(format!(
            "service {}: every task is being replaced",
            service.spec.name
        ))
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}
