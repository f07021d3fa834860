//! `forewarn run`: the Kafka service. Consumes the configured topics as a member
//! of the consumer group, scores events per partition, publishes alert
//! transitions and dead letters, re-reads its config on SIGHUP (or
//! `POST /-/reload`), and stops gracefully on SIGTERM or SIGINT.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use forewarn_core::time::parse_duration;
use forewarn_kafka::{Metrics, Options, Pipeline};

use crate::logging::{self, LogFormat};

/// Arguments of `forewarn run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The TOML config file (`[kafka]` section; `FOREWARN_KAFKA_*` variables override it).
    #[arg(long, short)]
    config: PathBuf,
    /// Longest wait on shutdown (or revocation) for outstanding alert and
    /// dead-letter deliveries before offsets are committed.
    #[arg(long, default_value = "10s", value_parser = duration)]
    shutdown_timeout: Duration,
    /// How often offsets that moved are committed.
    #[arg(long, default_value = "1s", value_parser = duration)]
    commit_interval: Duration,
    /// Worker threads processing the assigned partitions (partition p goes to
    /// worker p % N); 0 means one per available core.
    #[arg(long, default_value_t = 0, env = "FOREWARN_WORKERS")]
    workers: usize,
    /// Take a fixed share of the partitions instead of joining the consumer
    /// group's rebalances: member INDEX of COUNT consumes the partitions p with
    /// p % COUNT == INDEX (e.g. `1/3`). A restarted member resumes at once, with
    /// no join round; a member that stays down leaves its share unread until it
    /// is back. Every member must run with the same COUNT.
    #[arg(long, env = "FOREWARN_MEMBER", value_name = "INDEX/COUNT")]
    member: Option<forewarn_kafka::Share>,
    /// Delivery attempts per alert or dead letter before it is given up (with an
    /// error log and `forewarn_output_dropped_total`).
    #[arg(long, default_value_t = 5)]
    max_attempts: u32,
    /// Address of the HTTP endpoint (/metrics, /healthz, /readyz, /api/v1/alerts).
    #[arg(long, default_value = "127.0.0.1:9898", env = "FOREWARN_LISTEN")]
    listen: String,
    /// Alertmanager base URL to push firing and resolved alerts to (repeat the
    /// flag, or comma-separate, for an HA set).
    #[arg(long, env = "FOREWARN_ALERTMANAGER", value_delimiter = ',')]
    alertmanager: Vec<String>,
    /// User name for HTTP basic authentication to Alertmanager (with
    /// `--alertmanager-password-file`).
    #[arg(
        long,
        env = "FOREWARN_ALERTMANAGER_USER",
        requires = "alertmanager_password_file"
    )]
    alertmanager_user: Option<String>,
    /// File holding the basic-authentication password (trailing newline ignored).
    #[arg(
        long,
        env = "FOREWARN_ALERTMANAGER_PASSWORD_FILE",
        requires = "alertmanager_user"
    )]
    alertmanager_password_file: Option<PathBuf>,
    /// File holding a bearer token sent as `Authorization: Bearer …`.
    #[arg(
        long,
        env = "FOREWARN_ALERTMANAGER_BEARER_TOKEN_FILE",
        conflicts_with = "alertmanager_user"
    )]
    alertmanager_bearer_token_file: Option<PathBuf>,
    /// PEM file of CA certificates trusted for `https://` Alertmanagers, besides
    /// the system's.
    #[arg(long, env = "FOREWARN_ALERTMANAGER_CA_FILE")]
    alertmanager_ca_file: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (with `--alertmanager-key-file`).
    #[arg(
        long,
        env = "FOREWARN_ALERTMANAGER_CERT_FILE",
        requires = "alertmanager_key_file"
    )]
    alertmanager_cert_file: Option<PathBuf>,
    /// PEM (PKCS#8) key of the client certificate.
    #[arg(
        long,
        env = "FOREWARN_ALERTMANAGER_KEY_FILE",
        requires = "alertmanager_cert_file"
    )]
    alertmanager_key_file: Option<PathBuf>,
    /// Accept any Alertmanager certificate (testing only).
    #[arg(long)]
    alertmanager_insecure_skip_verify: bool,
    /// How often firing alerts are re-sent to Alertmanager.
    #[arg(long, default_value = "1m", value_parser = duration)]
    alertmanager_resend: Duration,
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log level or `tracing` directives; the `FOREWARN_LOG` variable overrides it.
    #[arg(long, default_value = "info")]
    log_level: String,
}

/// The contents of a secret or certificate file, naming the file and the flag
/// on error.
fn read_file(path: &std::path::Path, flag: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{flag}: cannot read {}", path.display()))
}

/// A secret from a file, without its trailing newline.
fn read_secret(path: &std::path::Path, flag: &str) -> anyhow::Result<String> {
    let bytes = read_file(path, flag)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("{flag}: {} is not UTF-8", path.display()))?;
    Ok(text.trim_end_matches(['\r', '\n']).to_string())
}

/// Credentials and TLS for Alertmanager, from the flags' files.
fn alertmanager_access(
    args: &Args,
) -> anyhow::Result<(forewarn_outputs::Auth, forewarn_outputs::Tls)> {
    use forewarn_outputs::Auth;
    let auth = match (
        &args.alertmanager_user,
        &args.alertmanager_password_file,
        &args.alertmanager_bearer_token_file,
    ) {
        (Some(user), Some(file), _) => Auth::Basic {
            user: user.clone(),
            password: read_secret(file, "--alertmanager-password-file")?,
        },
        (_, _, Some(file)) => Auth::Bearer(read_secret(file, "--alertmanager-bearer-token-file")?),
        _ => Auth::None,
    };
    let tls = forewarn_outputs::Tls {
        ca_pem: match &args.alertmanager_ca_file {
            Some(p) => Some(read_file(p, "--alertmanager-ca-file")?),
            None => None,
        },
        client: match (&args.alertmanager_cert_file, &args.alertmanager_key_file) {
            (Some(c), Some(k)) => Some((
                read_file(c, "--alertmanager-cert-file")?,
                read_file(k, "--alertmanager-key-file")?,
            )),
            _ => None,
        },
        insecure_skip_verify: args.alertmanager_insecure_skip_verify,
    };
    Ok((auth, tls))
}

fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s).map(|ms| Duration::from_millis(ms as u64))
}

/// Runs until SIGTERM/SIGINT (a second signal exits at once).
pub fn run(args: &Args) -> anyhow::Result<()> {
    logging::init(args.log_format, &args.log_level)?;
    let (cfg, overridden) = load(&args.config)?;
    if !overridden.is_empty() {
        tracing::info!(settings = ?overridden, "kafka settings from the environment");
    }
    // Secrets and certificates are read (and refused) before anything starts.
    let access = if args.alertmanager.is_empty() {
        None
    } else {
        Some(alertmanager_access(args)?)
    };
    let metrics = Metrics::for_config(&cfg);
    crate::http::register_build_info(&metrics);
    let options = Options {
        commit_interval: args.commit_interval,
        shutdown_timeout: args.shutdown_timeout,
        max_attempts: args.max_attempts,
        share: args.member,
        workers: if args.workers == 0 {
            Options::default_workers()
        } else {
            args.workers
        },
        ..Options::default()
    };
    let shutdown_timeout = options.shutdown_timeout;
    let pipeline =
        Pipeline::new(cfg, metrics.clone(), options).context("cannot start the pipeline")?;
    let endpoint = crate::http::Endpoint {
        metrics,
        alerts: pipeline.active_alerts(),
        reload: Some(reload_from(args.config.clone(), pipeline.reloader())),
    };
    let reload = endpoint.reload.clone().expect("set above");
    let stop = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let notifier = match access {
        Some((auth, tls)) => {
            let n = forewarn_outputs::Notifier::start(
                forewarn_outputs::AlertmanagerOptions {
                    urls: args.alertmanager.clone(),
                    resend_interval: args.alertmanager_resend,
                    auth,
                    tls,
                    ..Default::default()
                },
                &endpoint.metrics.registry,
                runtime.handle(),
            )
            .map_err(|e| anyhow::anyhow!("Alertmanager TLS: {e}"))?;
            let n = Arc::new(n);
            let sink = Arc::clone(&n);
            pipeline.add_alert_sink(Box::new(move |a| sink.notify(a)));
            tracing::info!(urls = ?args.alertmanager, "alerts go to Alertmanager too");
            Some(n)
        }
        None => None,
    };
    let accounting = runtime.block_on(async {
        let bound = crate::http::serve(&args.listen, endpoint).await?;
        tracing::info!(addr = %bound, "http endpoint listening: /metrics /healthz /readyz /api/v1/alerts");
        let flag = Arc::clone(&stop);
        let mut worker = tokio::task::spawn_blocking(move || pipeline.run(&flag));
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        loop {
            tokio::select! {
                done = &mut worker => return done?.map_err(anyhow::Error::from),
                signal = shutdown_signal() => {
                    tracing::info!(signal, "shutting down");
                    break;
                }
                _ = hangup.recv() => {
                    tracing::info!("SIGHUP: reloading the config");
                    let reload = Arc::clone(&reload);
                    // The outcome is logged and in the reload metrics.
                    let _ = tokio::task::spawn_blocking(move || reload()).await;
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        // The pipeline bounds its own wait for deliveries; leaving the group can
        // still hang on an unreachable coordinator, so the process bounds it too.
        let hard_limit = shutdown_timeout + Duration::from_secs(15);
        let done = tokio::select! {
            done = &mut worker => done?.map_err(anyhow::Error::from),
            signal = shutdown_signal() => {
                tracing::warn!(signal, "second signal: exiting without waiting");
                std::process::exit(130);
            }
            _ = tokio::time::sleep(hard_limit) => {
                tracing::error!(?hard_limit, "shutdown did not finish in time; exiting");
                std::process::exit(1);
            }
        };
        if let Some(n) = &notifier {
            n.close(shutdown_timeout).await;
        }
        done
    })?;
    note!(
        "run: consumed {} = applied {} + dead-lettered {} + late {} + refused {}; alerts delivered {}, dead letters delivered {}, dropped {}",
        accounting.consumed,
        accounting.applied,
        accounting.dead_lettered,
        accounting.late,
        accounting.refused,
        accounting.alerts_delivered,
        accounting.dead_letters_delivered,
        accounting.dropped,
    );
    Ok(())
}

/// Reads the config file with the `FOREWARN_KAFKA_*` overrides applied;
/// returns the settings they overrode.
fn load(path: &std::path::Path) -> anyhow::Result<(forewarn_core::Config, Vec<String>)> {
    let mut cfg = crate::load_config(path)?;
    let overridden = cfg
        .kafka
        .apply_env(std::env::vars())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((cfg, overridden))
}

/// Re-reads `path` and hands it to `reloader`; says what changed or why the
/// file was refused.
fn reload_from<Q>(
    path: PathBuf,
    reloader: forewarn_kafka::reload::Reloader<Q>,
) -> crate::http::Reload
where
    Q: forewarn_kafka::worker::MessageQueue + Send + 'static,
{
    let reloader = Arc::new(reloader);
    Arc::new(move || {
        let load = || {
            if path == std::path::Path::new("-") {
                return Err("the config was read from stdin: there is no file to re-read".into());
            }
            load(&path)
                .map(|(cfg, _)| cfg)
                .map_err(|e| format!("{e:#}"))
        };
        reloader
            .reload(load)
            .map(|c| describe_reload(&c))
            .map_err(|e| e.to_string())
    })
}

/// `config reloaded; rules: kept [a], restarted [b] …` for the HTTP answer.
fn describe_reload(c: &forewarn_core::engine::Carried) -> String {
    let part = |what: &str, ch: &forewarn_core::engine::Changes| {
        format!(
            "{what}: kept {:?}, restarted {:?}, added {:?}, removed {:?}",
            ch.kept, ch.restarted, ch.added, ch.removed
        )
    };
    format!(
        "config reloaded; {}; {}",
        part("rules", &c.rules),
        part("signals", &c.signals)
    )
}

/// Resolves on SIGTERM or SIGINT, naming it.
pub(crate) async fn shutdown_signal() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; only SIGINT stops forewarn");
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}
