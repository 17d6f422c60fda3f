//! Wires configuration → store → conductor → API server, and owns start-up
//! and shutdown: systemd READY once the listener is bound, WATCHDOG pings,
//! and on SIGTERM/SIGINT a drain of in-flight work before the process exits.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;

use crate::api::{self, auth::Htpasswd, AppState, Limits};
use crate::conductor::{self, Conductor};
use crate::config::{Auth, Config};
use crate::drivers::{self, Registry};
use crate::store::{self, Store};

fn host_name(config: &Config) -> String {
    if let Some(h) = &config.conductor.host {
        return h.clone();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "rackboot".to_string())
}

/// Opens the store and builds the conductor (shared by `serve` and tests).
pub fn build_conductor(config: &Config) -> Result<Conductor> {
    std::fs::create_dir_all(&config.data.dir)
        .with_context(|| format!("cannot create data dir {}", config.data.dir.display()))?;
    let db = config.data.dir.join("rackboot.db");
    let store = Store::open(
        &db,
        store::Options {
            history_max_entries: config.data.history_max_entries,
            readers: 2,
        },
    )
    .with_context(|| format!("cannot open database {}", db.display()))?;
    let c = &config.conductor;
    let settings = conductor::Settings {
        host: host_name(config),
        automated_clean: c.automated_clean,
        max_workers: c.max_workers,
        node_locked_wait: c.node_locked_wait.0,
        answer_wait: c.answer_wait.0,
        sync: conductor::sync::SyncSettings {
            interval: c.sync_power_state_interval.0,
            force_power_state: c.force_power_state_during_sync,
            max_retries: c.power_state_sync_max_retries,
            workers: c.power_state_sync_workers,
        },
        drivers: drivers::Settings {
            image_check_timeout: c.image_check_timeout.0,
            power_state_change_timeout: c.power_state_change_timeout.0,
            file_url_allowed_paths: {
                let mut paths = c.file_url_allowed_paths.clone();
                if let Ok(data) = std::path::absolute(&config.data.dir) {
                    paths.push(data);
                }
                paths
            },
        },
    };
    Ok(Conductor::new(
        store,
        Arc::new(Registry::with_ipmi(
            crate::drivers::ipmi::pool::PoolSettings {
                idle_timeout: c.ipmi_session_idle_timeout.0,
                max_concurrent: c.ipmi_max_concurrent_calls,
                timing: crate::drivers::ipmi::session::Timing {
                    first_try: c.ipmi_retry_first_wait.0,
                    tries: c.ipmi_tries,
                },
            },
        )),
        settings,
    ))
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    tokio::select! {
        _ = term => tracing::info!("SIGTERM: shutting down"),
        r = tokio::signal::ctrl_c() => {
            if r.is_ok() { tracing::info!("SIGINT: shutting down") }
        }
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
}

fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .map(|d| d / 2)
        .filter(|d| !d.is_zero())
}

/// `rackboot serve`.
pub async fn serve(config: Config) -> Result<()> {
    let conductor = build_conductor(&config)?;
    let (nodes, ports) = conductor.store().call(|s| s.counts()).await?;
    let schema = conductor.store().call(|s| s.schema_version()).await?;
    let recovered = conductor.recover().await?;
    tracing::info!(
        nodes,
        ports,
        schema,
        recovered,
        host = conductor.host(),
        "inventory loaded"
    );

    let htpasswd = match config.api.auth {
        Auth::None => None,
        Auth::HttpBasic => {
            let path = config
                .api
                .htpasswd
                .as_ref()
                .context("[api] htpasswd is required for http_basic")?;
            Some(Arc::new(Htpasswd::load(path)?))
        }
    };
    let state = AppState {
        conductor: conductor.clone(),
        htpasswd,
        limits: Limits {
            max_body_bytes: config.api.max_body_bytes,
            max_limit: config.api.max_limit,
            request_timeout: config.api.request_timeout.0,
            max_concurrent_requests: config.api.max_concurrent_requests,
        },
    };
    let listener = TcpListener::bind(config.api.listen)
        .await
        .with_context(|| format!("cannot listen on {} ([api] listen)", config.api.listen))?;
    tracing::info!(listen = %config.api.listen, auth = ?config.api.auth, "API listening");

    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let watchdog = watchdog_interval().map(|every| {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            }
        })
    });

    let listener = api::listener::BoundedListener::new(
        listener,
        config.api.max_connections,
        config.api.idle_timeout.0,
    );
    let (stop_sync, sync_stopped) = tokio::sync::watch::channel(false);
    let sync = {
        let c = conductor.clone();
        tokio::spawn(async move { c.run_power_sync(sync_stopped).await })
    };
    axum::serve(listener, api::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("API server failed")?;

    let _ = stop_sync.send(true);
    let _ = sync.await;
    conductor.registry().close_sessions().await;
    let left = conductor.drain(config.conductor.shutdown_timeout.0).await;
    if left > 0 {
        tracing::warn!(
            left,
            "workflows still running at shutdown; they will be failed at next start"
        );
    } else {
        tracing::info!("all workflows finished; store consistent");
    }
    if let Some(w) = watchdog {
        w.abort();
    }
    Ok(())
}
