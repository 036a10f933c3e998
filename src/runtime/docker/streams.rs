//! The engine calls that stream: image pulls with per-layer progress, exec with bounded output,
//! logs, and the event stream — each under its deadline (a pull's is reset by progress).

use std::collections::HashMap;
use std::time::Duration;

use bollard::auth::DockerCredentials;
use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::query_parameters::{CreateImageOptions, EventsOptions, LogsOptions};
use futures::StreamExt;
use futures::stream::BoxStream;

use super::super::{
    ContainerSummary, ExecOutput, LogChunk, LogOptions, PullProgress, RegistryCredentials,
    RuntimeError, RuntimeEvent, RuntimeResult, labels,
};
use super::{DockerRuntime, append_limited, map_error};

impl DockerRuntime {
    pub(super) async fn exec_in(
        &self,
        id: &str,
        argv: &[String],
        working_dir: Option<&str>,
        timeout: Duration,
    ) -> RuntimeResult<ExecOutput> {
        let config = CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(argv.to_vec()),
            working_dir: working_dir.map(str::to_string),
            ..Default::default()
        };
        let exec = self
            .deadline(
                "create exec",
                self.deadlines.call,
                self.docker()?.create_exec(id, config),
            )
            .await?;
        let docker = self.docker()?;
        let run = async {
            let mut stdout = Vec::new();
            let mut stderr = Vec::new();
            if let StartExecResults::Attached { mut output, .. } =
                docker.start_exec(&exec.id, None).await?
            {
                while let Some(chunk) = output.next().await {
                    match chunk? {
                        LogOutput::StdErr { message } => append_limited(&mut stderr, &message),
                        LogOutput::StdOut { message } | LogOutput::Console { message } => {
                            append_limited(&mut stdout, &message)
                        }
                        LogOutput::StdIn { .. } => {}
                    }
                }
            }
            Ok::<_, BollardError>((stdout, stderr))
        };
        let (stdout, stderr) = self.deadline("run exec", timeout, run).await?;
        let inspected = self
            .deadline(
                "inspect exec",
                self.deadlines.call,
                self.docker()?.inspect_exec(&exec.id),
            )
            .await?;
        Ok(ExecOutput {
            exit_code: inspected.exit_code.unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }

    pub(super) fn log_stream(
        &self,
        id: &str,
        options: &LogOptions,
    ) -> BoxStream<'static, RuntimeResult<LogChunk>> {
        self.stream(|docker| {
            docker
                .logs(id, Some(logs_query(options)))
                .map(|chunk| log_chunk("container logs", chunk))
                .boxed()
        })
    }

    /// A service's log through the manager (all its tasks, on every node), or one task's.
    pub(super) fn service_log_stream(
        &self,
        service: &str,
        task: Option<&str>,
        options: &LogOptions,
    ) -> BoxStream<'static, RuntimeResult<LogChunk>> {
        let query = logs_query(options);
        self.stream(|docker| match task {
            Some(task) => docker
                .task_logs(task, Some(query))
                .map(|chunk| log_chunk("task logs", chunk))
                .boxed(),
            None => docker
                .service_logs(service, Some(query))
                .map(|chunk| log_chunk("service logs", chunk))
                .boxed(),
        })
    }

    pub(super) async fn pull_image(
        &self,
        reference: &str,
        credentials: Option<&RegistryCredentials>,
        progress: &(dyn Fn(PullProgress) + Send + Sync),
    ) -> RuntimeResult<()> {
        let options = CreateImageOptions {
            from_image: Some(reference.to_string()),
            ..Default::default()
        };
        let credentials = credentials.map(|c| DockerCredentials {
            username: Some(c.username.clone()),
            password: Some(c.password.clone()),
            serveraddress: Some(c.server.clone()),
            ..Default::default()
        });
        let mut stream = self
            .docker()?
            .create_image(Some(options), None, credentials);
        let idle = self.deadlines.call;
        let whole = async {
            // Each message must arrive within the call deadline: a stalled pull fails instead of
            // holding its app forever.
            loop {
                match tokio::time::timeout(idle, stream.next()).await {
                    Err(_) => {
                        return Err(RuntimeError::Timeout {
                            op: "pull image (no progress)",
                            seconds: idle.as_secs(),
                        });
                    }
                    Ok(None) => return Ok(()),
                    Ok(Some(Err(BollardError::DockerStreamError { error }))) => {
                        return Err(RuntimeError::Pull {
                            reference: reference.to_string(),
                            message: error,
                        });
                    }
                    Ok(Some(Err(BollardError::DockerResponseServerError { message, .. }))) => {
                        return Err(RuntimeError::Pull {
                            reference: reference.to_string(),
                            message,
                        });
                    }
                    Ok(Some(Err(e))) => return Err(map_error("pull image", e)),
                    Ok(Some(Ok(info))) => {
                        let detail = info.progress_detail.unwrap_or_default();
                        progress(PullProgress {
                            layer: info.id,
                            status: info.status.unwrap_or_default(),
                            current: detail.current,
                            total: detail.total,
                        });
                    }
                }
            }
        };
        match tokio::time::timeout(self.deadlines.pull, whole).await {
            Ok(result) => result,
            Err(_) => Err(RuntimeError::Timeout {
                op: "pull image",
                seconds: self.deadlines.pull.as_secs(),
            }),
        }
    }

    /// The Swarm task containers of `instance` on this engine (any state): what a node agent
    /// reports and acts on. (They carry the instance's labels but not `wharf.managed-by`.)
    pub async fn task_containers(&self, instance: &str) -> RuntimeResult<Vec<ContainerSummary>> {
        self.list_containers(Self::task_filters(instance)).await
    }

    /// Events of the Swarm task containers of `instance` on this engine.
    pub fn task_events(&self, instance: &str) -> BoxStream<'static, RuntimeResult<RuntimeEvent>> {
        let mut filters = Self::task_filters(instance);
        filters.insert("type".to_string(), vec!["container".to_string()]);
        let options = EventsOptions {
            filters: Some(filters),
            ..Default::default()
        };
        self.stream(|docker| {
            docker
                .events(Some(options))
                .map(convert_event(false))
                .boxed()
        })
    }

    fn task_filters(instance: &str) -> HashMap<String, Vec<String>> {
        HashMap::from([(
            "label".to_string(),
            vec![
                format!("{}={instance}", labels::INSTANCE),
                labels::UID.to_string(),
                "com.docker.swarm.task.id".to_string(),
            ],
        )])
    }

    pub(super) fn event_stream(
        &self,
        instance: &str,
    ) -> BoxStream<'static, RuntimeResult<RuntimeEvent>> {
        let mut filters = Self::instance_filters(instance);
        filters.insert("type".to_string(), vec!["container".to_string()]);
        let containers = EventsOptions {
            filters: Some(filters),
            ..Default::default()
        };
        // Images carry no wharf labels: their events come on a stream of their own.
        let images = EventsOptions {
            filters: Some(HashMap::from([(
                "type".to_string(),
                vec!["image".to_string()],
            )])),
            ..Default::default()
        };
        self.stream(|docker| {
            futures::stream::select(
                docker.events(Some(containers)).map(convert_event(false)),
                docker.events(Some(images)).map(convert_event(true)),
            )
            .boxed()
        })
    }
}

/// The engine's event as wharf's (`image`: an image event).
pub(super) fn convert_event(
    image: bool,
) -> impl Fn(Result<bollard::models::EventMessage, BollardError>) -> RuntimeResult<RuntimeEvent> {
    move |event| {
        let event = event.map_err(|e| map_error("events", e))?;
        let time_ms = match (event.time_nano, event.time) {
            (Some(ns), _) if ns > 0 => ns / 1_000_000,
            (_, Some(s)) => s.saturating_mul(1000),
            _ => chrono::Utc::now().timestamp_millis(),
        };
        let actor = event.actor.unwrap_or_default();
        Ok(RuntimeEvent {
            id: actor.id.unwrap_or_default(),
            action: event.action.unwrap_or_default(),
            image,
            time_ms,
            attributes: actor.attributes.unwrap_or_default().into_iter().collect(),
        })
    }
}

fn logs_query(options: &LogOptions) -> LogsOptions {
    LogsOptions {
        follow: options.follow,
        stdout: true,
        stderr: true,
        since: options
            .since
            .map_or(0, |s| s.clamp(0, i64::from(i32::MAX)) as i32),
        until: 0,
        timestamps: options.timestamps,
        tail: options
            .tail
            .map_or_else(|| "all".to_string(), |n| n.to_string()),
    }
}

fn log_chunk(op: &'static str, chunk: Result<LogOutput, BollardError>) -> RuntimeResult<LogChunk> {
    let chunk = chunk.map_err(|e| map_error(op, e))?;
    Ok(match chunk {
        LogOutput::StdErr { message } => LogChunk {
            stderr: true,
            data: message,
        },
        LogOutput::StdOut { message }
        | LogOutput::Console { message }
        | LogOutput::StdIn { message } => LogChunk {
            stderr: false,
            data: message,
        },
    })
}
