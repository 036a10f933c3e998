//! The `wharf` binary: parses the command line (`wharf::cli::args`) and dispatches. `wharf
//! serve` runs the reconciler; every other command is a client of its API.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use wharf::cli::args::{
    Args, Command, ImagesCommand, PolicyCommand, ServeArgs, StoreCommand, TokenCommand,
};
use wharf::cli::{self, Client, Exit};
use wharf::runtime::docker::{Deadlines, DockerRuntime};
use wharf::server::Server;

/// jemalloc: with 1000 apps `serve` holds about a third less than with glibc's allocator (whose
/// per-thread arenas kept what a pass freed), and gives memory back when apps go.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Freed pages go back to the system within a second (a background thread purges them), over
/// two arenas: wharf's work is a few tasks on a small pool, not many busy threads.
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static _rjem_malloc_conf: &[u8] =
    b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0,narenas:2\0";

async fn serve(data: PathBuf, serve: ServeArgs) -> anyhow::Result<()> {
    let config = serve
        .into_config(data.clone())
        .map_err(|e| anyhow::anyhow!(e))?;
    let server = Server::start(config).await?;
    tracing::info!(token_file = %data.join(wharf::server::TOKEN_FILE).display(), "ready");
    let signal = termination().await?;
    tracing::info!("{signal}: shutting down");
    server.shutdown().await;
    Ok(())
}

/// `wharf agent`: runs until a fatal error or a termination signal.
async fn agent(args: &Args, token_file: Option<&std::path::Path>) -> anyhow::Result<()> {
    let token = match (token_file, &args.token) {
        (Some(path), _) => std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("--token-file {}: {e}", path.display()))?
            .trim()
            .to_string(),
        (None, Some(token)) => token.trim().to_string(),
        (None, None) => anyhow::bail!(
            "no agent token: pass --token-file FILE or set WHARF_TOKEN (create one with `wharf token create --role agent`)"
        ),
    };
    if token.is_empty() {
        anyhow::bail!("the agent token is empty");
    }
    let engine = std::sync::Arc::new(DockerRuntime::connect_local(Deadlines::default()));
    let config = wharf::agent::client::AgentConfig {
        server: args.server.clone(),
        token,
        ca_cert: args.ca_cert.clone(),
    };
    tokio::select! {
        result = wharf::agent::client::run(config, engine) => Ok(result?),
        signal = termination() => {
            tracing::info!("{}: the agent stops", signal?);
            Ok(())
        }
    }
}

/// Waits for SIGTERM (service managers, `docker stop`) or SIGINT (Ctrl-C); names the one.
async fn termination() -> std::io::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => Ok("SIGTERM"),
            r = tokio::signal::ctrl_c() => r.map(|()| "SIGINT"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map(|()| "Ctrl-C")
    }
}

async fn client_command(args: &Args) -> cli::CliResult {
    let client = || {
        Client::new(
            &args.server,
            args.token.clone(),
            &args.data,
            args.ca_cert.as_deref(),
        )
    };
    match &args.command {
        Command::Serve(_) | Command::Agent { .. } => {
            unreachable!("serve and agent are handled before")
        }
        Command::Backup { out } => cli::backup::backup(&args.data, out.as_deref()).await,
        Command::Store(StoreCommand::Copy { from, to }) => {
            cli::backup::store_copy(&args.data, from.clone(), to).await
        }
        Command::Validate { files } => cli::validate(files),
        Command::Convert {
            file,
            namespace,
            out,
            mode,
            strict,
        } => cli::convert::convert(file, namespace, *mode, out.as_deref(), *strict),
        Command::Schema { kind, out } => cli::schema(*kind, out.as_deref()),
        Command::Completion { shell } => cli::shell::completion(*shell),
        Command::Man { out } => cli::shell::man(out),
        Command::Apply {
            files,
            dry_run,
            set,
            wait,
        } => cli::apply(&client()?, files, *dry_run, set, wait.wait, wait.timeout.0).await,
        Command::Diff { files } => cli::diff(&client()?, files).await,
        Command::Get {
            resource,
            watch: true,
            ..
        } if !resource.starts_with("app") => cli::watch_refused(resource),
        Command::Get {
            resource,
            name,
            output,
            ..
        } if resource.starts_with("image") => {
            cli::images::get(&client()?, name.as_deref(), output.output).await
        }
        Command::Get {
            resource,
            name,
            output,
            ..
        } if resource.starts_with("node") => {
            cli::nodes::get(&client()?, name.as_deref(), output.output).await
        }
        Command::Info { output } => cli::nodes::info(&client()?, output.output).await,
        Command::Status { output } => cli::cluster::status(&client()?, output.output).await,
        Command::Sources { output } => cli::sources::sources(&client()?, output.output).await,
        Command::Describe { resource, name, .. } if resource.starts_with("node") => {
            cli::nodes::describe(&client()?, name).await
        }
        Command::Images { command } => match command {
            ImagesCommand::Pull { name } => cli::images::pull(&client()?, name).await,
            ImagesCommand::UpdateAll => cli::images::update_all(&client()?).await,
            ImagesCommand::Request { reference, reason } => {
                cli::security::request_image(&client()?, reference, reason).await
            }
            ImagesCommand::Requests { state, output } => {
                cli::security::list_requests(&client()?, state.as_deref(), output.output).await
            }
            ImagesCommand::Approve { id } => cli::security::decide(&client()?, id, true, "").await,
            ImagesCommand::Reject { id, message } => {
                cli::security::decide(&client()?, id, false, message).await
            }
        },
        Command::Token { command } => match command {
            TokenCommand::Create {
                namespaces,
                role,
                expires,
                description,
            } => {
                cli::security::create_token(
                    &client()?,
                    namespaces,
                    role,
                    expires.as_deref(),
                    description,
                )
                .await
            }
            TokenCommand::List { output } => {
                cli::security::list_tokens(&client()?, output.output).await
            }
            TokenCommand::Revoke { id } => cli::security::revoke_token(&client()?, id).await,
        },
        Command::Whoami { output } => cli::security::whoami(&client()?, output.output).await,
        Command::Policy { command } => match command {
            PolicyCommand::Get { namespace, output } => {
                cli::security::get_policy(&client()?, namespace, *output).await
            }
            PolicyCommand::Set { namespace, file } => {
                cli::security::set_policy(&client()?, namespace, file).await
            }
            PolicyCommand::Delete { namespace } => {
                cli::security::delete_policy(&client()?, namespace).await
            }
        },
        Command::Audit {
            token_id,
            namespace,
            since,
            limit,
            output,
        } => {
            cli::security::audit(
                &client()?,
                token_id.as_deref(),
                namespace.as_deref(),
                since.as_deref(),
                *limit,
                output.output,
            )
            .await
        }
        Command::Get {
            name,
            namespace,
            selector,
            owner,
            output,
            watch: true,
            ..
        } => {
            cli::watch_apps(
                &client()?,
                namespace.as_deref(),
                name.as_deref(),
                selector.as_deref(),
                owner.as_deref(),
                output.output,
            )
            .await
        }
        Command::Get {
            name,
            namespace,
            selector,
            owner,
            output,
            ..
        } => {
            cli::get_apps(
                &client()?,
                namespace.as_deref(),
                name.as_deref(),
                selector.as_deref(),
                owner.as_deref(),
                output.output,
            )
            .await
        }
        Command::Restart { app } => {
            cli::apps::action(&client()?, &app.namespace, &app.name, "restart", &[]).await
        }
        Command::Kill { app, signal, task } => {
            let mut query = vec![("signal", signal.clone())];
            query.extend(task.clone().map(|t| ("task", t)));
            cli::apps::action(&client()?, &app.namespace, &app.name, "kill", &query).await
        }
        Command::HardReset { app, volumes } => {
            let query = [("volumes", volumes.to_string())];
            cli::apps::action(&client()?, &app.namespace, &app.name, "hard-reset", &query).await
        }
        Command::Start { app } | Command::Unpause { app } => {
            cli::apps::set_state(&client()?, &app.namespace, &app.name, "running").await
        }
        Command::Stop { app } => {
            cli::apps::set_state(&client()?, &app.namespace, &app.name, "stopped").await
        }
        Command::Pause { app } => {
            cli::apps::set_state(&client()?, &app.namespace, &app.name, "paused").await
        }
        Command::Logs {
            app,
            tail,
            since,
            follow,
            task,
        } => {
            cli::apps::logs(
                &client()?,
                &app.namespace,
                &app.name,
                tail.as_deref(),
                since.as_deref(),
                *follow,
                task.as_deref(),
            )
            .await
        }
        Command::Inspect { app, output, task } => {
            cli::apps::inspect(
                &client()?,
                &app.namespace,
                &app.name,
                *output,
                task.as_deref(),
            )
            .await
        }
        Command::Stats {
            app,
            since,
            step,
            task,
            output,
        } => {
            cli::stats::app(
                &client()?,
                &app.namespace,
                &app.name,
                since,
                step.as_deref(),
                task.as_deref(),
                output.output,
            )
            .await
        }
        Command::Uptime {
            app,
            duration,
            output,
        } => {
            cli::stats::uptime(
                &client()?,
                &app.namespace,
                &app.name,
                duration,
                output.output,
            )
            .await
        }
        Command::Users { namespace, output } => {
            cli::apps::users(&client()?, namespace, output.output).await
        }
        Command::Git {
            app,
            op,
            path,
            branch,
            task,
        } => {
            cli::apps::git(
                &client()?,
                &app.namespace,
                &app.name,
                op,
                path,
                branch.as_deref(),
                task.as_deref(),
            )
            .await
        }
        Command::Run {
            image,
            owner,
            namespace,
            name,
            env,
            port,
            memory,
            cpus,
            dry_run,
            wait,
            command,
        } => {
            let options = cli::apps::RunOptions {
                image,
                owner,
                namespace,
                name: name.as_deref(),
                env,
                ports: port,
                memory: memory.as_deref(),
                cpus: *cpus,
                command,
                dry_run: *dry_run,
                wait: wait.wait,
                timeout: wait.timeout.0,
            };
            cli::apps::run(&client()?, options).await
        }
        Command::Describe {
            name, namespace, ..
        } => cli::describe(&client()?, namespace, name).await,
        Command::Delete {
            resource: Some(resource),
            name: Some(name),
            ..
        } if resource.starts_with("node") => cli::delete_node(&client()?, name).await,
        Command::Delete {
            name,
            namespace,
            files,
            ..
        } => cli::delete(&client()?, namespace, name.as_deref(), files).await,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Command::Agent { token_file } = &args.command {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "info".into()),
            )
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
        return match agent(&args, token_file.as_deref()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e:#}");
                Exit::Failure.into()
            }
        };
    }
    if let Command::Serve(serve_args) = args.command {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "info,tower_http=warn,sqlx=warn".into()),
            )
            .init();
        return match serve(args.data, *serve_args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e:#}");
                Exit::Failure.into()
            }
        };
    }
    match client_command(&args).await {
        Ok(exit) => exit.into(),
        Err(e) => {
            cli::report(&e);
            e.exit.into()
        }
    }
}
