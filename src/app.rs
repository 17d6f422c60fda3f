//! Wires configuration → store → conductor → API server, and owns start-up
//! and shutdown: systemd READY once the listener is bound, WATCHDOG pings,
//! and on SIGTERM/SIGINT a drain of in-flight work before the process exits.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::api::{self, auth::Htpasswd, AppState, Limits};
use crate::conductor::{self, Conductor};
use crate::config::{Auth, Config};
use crate::drivers::{self, Registry};
use crate::model::{HistoryEntry, Lease, Node, Port};
use crate::net::{BoundedListener, Peer};
use crate::pxe;
use crate::store::{self, Store};

/// The store as the boot services see it: what they read, where their
/// events and leases go. They never hold the store itself.
struct BootStore(Store);

impl pxe::BootSource for BootStore {
    fn boot_entries(&self) -> Result<Vec<(Port, Node)>, pxe::SourceError> {
        Ok(self.0.boot_entries()?)
    }
    fn nodes_by_state(&self) -> Result<Vec<(String, u64)>, pxe::SourceError> {
        Ok(self.0.nodes_by_state()?)
    }
}

impl pxe::EventSink for BootStore {
    fn append(&self, events: &[(uuid::Uuid, HistoryEntry)]) -> Result<(), pxe::SourceError> {
        Ok(self.0.append_history(events)?)
    }
}

impl pxe::dhcp::LeaseStore for BootStore {
    fn load(&self) -> Result<Vec<Lease>, pxe::dhcp::LeaseError> {
        Ok(self.0.load_leases()?)
    }
    fn save(&self, leases: &[Lease]) -> Result<(), pxe::dhcp::LeaseError> {
        Ok(self.0.save_leases(leases)?)
    }
}

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
            readers: config.data.readers,
        },
    )
    .with_context(|| format!("cannot open database {}", db.display()))?;
    let c = &config.conductor;
    let allowed = {
        let mut paths = c.file_url_allowed_paths.clone();
        if let Ok(data) = std::path::absolute(&config.data.dir) {
            paths.push(data);
        }
        paths
    };
    let cache = crate::images::cache::Cache::new(
        crate::images::cache::Settings {
            dir: config.data.dir.join("cache"),
            max_bytes: config.images.cache_size_mib.saturating_mul(1 << 20),
            read_timeout: config.images.read_timeout.0,
            allowed: allowed.clone(),
        },
        reqwest::Client::new(),
    )
    .with_context(|| {
        format!(
            "cannot create the image cache in {}",
            config.data.dir.join("cache").display()
        )
    })?;
    if config.discovery.enabled {
        let driver = config.discovery.driver.as_deref().unwrap_or_default();
        if !drivers::HARDWARE_TYPES.iter().any(|t| t.name == driver) {
            anyhow::bail!(
                "[discovery] driver = {driver:?} is not a hardware type of this appliance (known: {})",
                drivers::HARDWARE_TYPES
                    .iter()
                    .map(|t| t.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let settings = conductor::Settings {
        host: host_name(config),
        take_over_hosts: c.take_over_hosts.clone(),
        clock: conductor::Clock::Wall,
        automated_clean: c.automated_clean,
        max_workers: c.max_workers,
        node_locked_wait: c.node_locked_wait.0,
        answer_wait: c.answer_wait.0,
        deploy_callback_timeout: c.deploy_callback_timeout.0,
        clean_callback_timeout: c.clean_callback_timeout.0,
        inspect_wait_timeout: c.inspect_wait_timeout.0,
        inspection: crate::inspection::Settings {
            add_ports: config.inspector.add_ports,
            keep_ports: config.inspector.keep_ports,
            update_pxe_enabled: config.inspector.update_pxe_enabled,
            hooks: config.inspector.hooks.clone(),
            ..Default::default()
        },
        inspection_power_off: config.inspector.power_off,
        discovery: config.discovery.enabled.then(|| conductor::Discovery {
            driver: config.discovery.driver.clone().unwrap_or_default(),
            resource_class: config.discovery.resource_class.clone(),
        }),
        clean_step_overrides: conductor::agent_clean::parse_overrides(
            &c.clean_step_priority_override,
        )
        .map_err(|e| anyhow::anyhow!("[conductor] clean_step_priority_override: {e}"))?,
        agent: conductor::agent_client::AgentSettings {
            command_timeout: config.agent.command_timeout.0,
            max_command_attempts: config.agent.max_command_attempts,
            poll_interval: config.agent.poll_interval.0,
            poll_attempts: config.agent.poll_attempts,
            max_answer_bytes: config.agent.max_answer_bytes,
        },
        sync: conductor::sync::SyncSettings {
            interval: c.sync_power_state_interval.0,
            force_power_state: c.force_power_state_during_sync,
            max_retries: c.power_state_sync_max_retries,
            workers: c.power_state_sync_workers,
        },
        drivers: drivers::Settings {
            image_check_timeout: c.image_check_timeout.0,
            power_state_change_timeout: c.power_state_change_timeout.0,
            file_url_allowed_paths: allowed.clone(),
            cache: Some(cache),
            vmedia: drivers::Vmedia {
                dir: Some(config.data.dir.join("vmedia")),
                loaders: config.vmedia.clone(),
                boot_url: Default::default(),
                inspection_params: config.inspector.extra_kernel_params.clone(),
            },
        },
    };
    Ok(Conductor::new(
        store,
        Arc::new(Registry::new(
            drivers::HARDWARE_TYPES,
            drivers::Context::new(
                crate::drivers::ipmi::pool::PoolSettings {
                    idle_timeout: c.ipmi_session_idle_timeout.0,
                    keep: c.ipmi_session_keep.0,
                    max_concurrent: c.ipmi_max_concurrent_calls,
                    timing: crate::drivers::ipmi::session::Timing {
                        first_try: c.ipmi_retry_first_wait.0,
                        tries: c.ipmi_tries,
                    },
                },
                redfish_settings(c),
            ),
        )),
        settings,
    ))
}

/// The Redfish client's limits from `[conductor] redfish_*`.
pub fn redfish_settings(c: &crate::config::Conductor) -> crate::drivers::redfish::client::Settings {
    use crate::drivers::redfish::client::{AuthType, Settings};
    Settings {
        connect_timeout: c.redfish_connect_timeout.0,
        read_timeout: c.redfish_read_timeout.0,
        max_concurrent: c.redfish_max_concurrent_calls,
        per_bmc: c.redfish_calls_per_bmc,
        cache_size: c.redfish_connection_cache_size,
        connection_attempts: c.redfish_connection_attempts,
        connection_retry_interval: c.redfish_connection_retry_interval.0,
        // Checked when the configuration is loaded.
        default_auth: AuthType::parse(&c.redfish_auth_type).unwrap_or(AuthType::Auto),
    }
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

/// How long the boot backend lets a burst of node and port writes settle
/// before it rebuilds its table once: short enough that a node is served
/// its new boot answer well within a DHCP retry (~1 s), long enough that a
/// bulk enrolment is one reload, not hundreds.
const BOOT_BACKEND_DEBOUNCE: Duration = Duration::from_millis(50);

/// How long, after the shutdown deadline, queued boot events may take to
/// be written (one batched write each 256 events; the queue is bounded).
const TIMELINE_FLUSH_GRACE: Duration = Duration::from_secs(5);

/// Where the listeners ended up: with port 0 in the config the kernel picks
/// the port, so READY carries them in a STATUS line (the test harness reads
/// it; systemd shows it).
#[derive(Debug, Default)]
struct Bound {
    api: Option<std::net::SocketAddr>,
    http: Option<std::net::SocketAddr>,
    tftp: Option<std::net::SocketAddr>,
}

impl Bound {
    fn status(&self) -> String {
        let show = |a: Option<std::net::SocketAddr>| {
            a.map(|a| a.to_string()).unwrap_or_else(|| "off".into())
        };
        format!(
            "listening api={} http={} tftp={}",
            show(self.api),
            show(self.http),
            show(self.tftp)
        )
    }
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
    let mut bound = Bound {
        api: listener.local_addr().ok(),
        ..Bound::default()
    };
    tracing::info!(listen = ?bound.api, auth = ?config.api.auth, "API listening");

    // Every task runs in this set and ends at `stop`; shutdown waits for it.
    let mut tasks: JoinSet<()> = JoinSet::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    let boot_store = Arc::new(BootStore(conductor.store().clone()));
    let (timeline, timeline_writer) =
        pxe::Timeline::start(boot_store.clone(), config.dhcp.event_queue);
    let discovery = match (
        config.discovery.enabled,
        &config.discovery.deploy_kernel,
        &config.discovery.deploy_ramdisk,
    ) {
        (true, Some(k), Some(r)) => {
            tracing::warn!("discovery is on: machines nobody enrolled that network-boot here get the agent ramdisk and are enrolled from what it reports");
            Some(pxe::discovery_boot(
                k,
                r,
                &config.discovery.kernel_append_params,
            ))
        }
        _ => None,
    };
    let backend = pxe::BootBackend::with_discovery(
        boot_store.clone(),
        conductor.store().subscribe(),
        discovery,
    );
    let known = backend
        .reload()
        .await
        .map_err(|e| anyhow::anyhow!("the boot backend cannot read nodes and ports: {e}"))?;
    tracing::info!(ports = known, "boot backend loaded");
    tasks.spawn(backend.clone().run(BOOT_BACKEND_DEBOUNCE, stop_rx.clone()));
    // The cache never evicts what a node booting from the network uses.
    if let Some(c) = conductor.image_cache() {
        let b = backend.clone();
        c.set_in_use(Arc::new(move |r: &str| b.uses(r)));
    }
    {
        let c = conductor.clone();
        let stop = stop_rx.clone();
        tasks.spawn(async move { c.run_callback_timeouts(stop).await });
    }
    let (dhcp, http) = start_boot_services(
        &config,
        &conductor,
        backend,
        boot_store,
        timeline.clone(),
        stop_rx.clone(),
        &mut tasks,
    )
    .await?;
    bound.http = http;
    bound.tftp = start_tftp(&config, timeline, stop_rx.clone(), &mut tasks).await;

    let status = bound.status();
    tracing::info!("{status}");
    let _ = sd_notify::notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&status),
    ]);
    if let Some(every) = watchdog_interval() {
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                    }
                    _ = stop.changed() => return,
                }
            }
        });
    }

    let listener = BoundedListener::new(
        listener,
        config.api.max_connections,
        config.api.idle_timeout.0,
    );
    {
        let c = conductor.clone();
        let stop = stop_rx.clone();
        tasks.spawn(async move { c.run_power_sync(stop).await });
    }
    axum::serve(listener, api::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("API server failed")?;

    // One deadline for the whole stop: services end and running workflows
    // finish side by side within [conductor] shutdown_timeout, then queued
    // boot events get a short grace (the unit's TimeoutStopSec is above both).
    let _ = stop_tx.send(true);
    let deadline = tokio::time::Instant::now() + config.conductor.shutdown_timeout.0;
    let services = async {
        while tasks.join_next().await.is_some() {}
        if let Some(d) = dhcp {
            d.finish().await;
        }
    };
    let (services, left) = tokio::join!(
        tokio::time::timeout_at(deadline, services),
        conductor.drain(deadline.saturating_duration_since(tokio::time::Instant::now())),
    );
    if services.is_err() {
        tracing::warn!(
            left = tasks.len(),
            "services still running after [conductor] shutdown_timeout; stopping them"
        );
        tasks.shutdown().await;
    }
    if left > 0 {
        tracing::warn!(
            left,
            "workflows still running at shutdown; they will be failed at next start"
        );
    } else {
        tracing::info!("all workflows finished; store consistent");
    }
    // Sessions close only once no workflow can need them.
    conductor.registry().close_sessions().await;
    // Every boot service has stopped and dropped its timeline handle:
    // write what is still queued.
    if tokio::time::timeout(TIMELINE_FLUSH_GRACE, timeline_writer.finish())
        .await
        .is_err()
    {
        tracing::warn!("boot events still queued at exit were not all written");
    }
    Ok(())
}

/// Starts the boot HTTP server and (when `[dhcp] mode` is not "off") the
/// DHCP server and the router advertisements, in `tasks`. Returns the DHCP
/// server and where boot HTTP listens.
async fn start_boot_services(
    config: &Config,
    conductor: &Conductor,
    backend: Arc<pxe::BootBackend>,
    boot_store: Arc<BootStore>,
    timeline: Arc<pxe::Timeline>,
    stop: watch::Receiver<bool>,
    tasks: &mut JoinSet<()>,
) -> Result<(Option<pxe::dhcp::Running>, Option<std::net::SocketAddr>)> {
    use crate::config::Unknown;
    use pxe::dhcp::handler::Settings;
    let http_listener = match TcpListener::bind(config.http.listen).await {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(
                "boot HTTP is off: cannot listen on {} ([http] listen): {e}",
                config.http.listen
            );
            None
        }
    };
    let http_addr = http_listener.as_ref().and_then(|l| l.local_addr().ok());
    let d = &config.dhcp;
    let mode = d.mode.server();
    // The DHCP interface's address, when DHCP is on.
    let iface = match (mode, &d.interface) {
        (Some(_), Some(interface)) => Some((
            interface.clone(),
            match (d.server_address, d.subnet_mask) {
                (Some(a), Some(m)) => (a, m),
                _ => pxe::dhcp::interface_ipv4(interface)?,
            },
        )),
        _ => None,
    };
    let server_ip = match (d.server_address, &iface) {
        (Some(a), _) => Some(a),
        (None, Some((_, (ip, _)))) => Some(*ip),
        _ => None,
    };
    let listen = http_addr.unwrap_or(config.http.listen);
    let public_url = match (&config.http.public_url, server_ip) {
        (Some(u), _) => u.clone(),
        (None, Some(ip)) => format!("http://{ip}:{}", listen.port()),
        (None, None) if !listen.ip().is_unspecified() => format!("http://{listen}"),
        (None, None) => {
            tracing::warn!("[http] public_url is not set and DHCP is off: booting nodes will be told http://127.0.0.1:{}", listen.port());
            format!("http://127.0.0.1:{}", listen.port())
        }
    }
    .trim_end_matches('/')
    .to_string();
    if http_listener.is_some() {
        // Virtual media ISOs are served by the boot HTTP server, and the
        // ramdisks on them call back there.
        let _ = conductor.vmedia().boot_url.set(public_url.clone());
    }
    if let Some(listener) = http_listener {
        start_http(
            config,
            conductor,
            backend.clone(),
            timeline.clone(),
            &public_url,
            listener,
            stop.clone(),
            tasks,
        );
    }
    let (Some(mode), Some((interface, (if_ip, if_mask)))) = (mode, iface) else {
        return Ok((None, http_addr));
    };
    let server_ip = server_ip.unwrap_or(if_ip);
    let subnet_mask = d.subnet_mask.unwrap_or(if_mask);
    let settings = pxe::dhcp::ServerSettings {
        interface: interface.clone(),
        decider: Settings {
            mode,
            server_ip,
            subnet_mask,
            router: d.router,
            dns: d.dns.clone(),
            domain: d.domain.clone(),
            lease_time: d.lease_time.0.as_secs().max(60),
            offer_hold: d.offer_hold.0.as_secs().max(1),
            unknown_allowed: d.unknown == Unknown::Allow,
            loaders: pxe::bootfile::Loaders {
                bios: d.bios_loader.clone(),
                uefi_x64: d.uefi_loader.clone(),
                uefi_arm64: d.arm64_loader.clone(),
            },
            public_url,
            proxy_bios: d.proxy_bios,
            proxy_uefi: d.proxy_uefi,
        },
        range: d.range.map(|r| (r.first, r.last)),
        lease_flush_interval: d.lease_flush_interval.0,
        dhcp_port: d.port,
        pxe_port: d.pxe_port,
    };
    let sockets = pxe::dhcp::bind(&interface, mode, d.port, d.pxe_port)?;
    let running = pxe::dhcp::serve(
        sockets,
        settings,
        backend,
        boot_store,
        timeline,
        stop.clone(),
    )
    .await?;
    if d.router_advertisements {
        match pxe::ra::bind(&interface) {
            Ok(responder) => {
                tasks.spawn(pxe::ra::serve(responder, stop.clone()));
            }
            Err(e) => tracing::warn!(error = %e, "router advertisements are off: {e:#}"),
        }
    }
    Ok((Some(running), http_addr))
}

/// Starts the boot HTTP server (boot routes and Ironic's agent endpoints)
/// on its bound listener, in `tasks`.
#[allow(clippy::too_many_arguments)]
fn start_http(
    config: &Config,
    conductor: &Conductor,
    backend: Arc<pxe::BootBackend>,
    timeline: Arc<pxe::Timeline>,
    public_url: &str,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
    tasks: &mut JoinSet<()>,
) {
    let h = &config.http;
    let inspection_max_bytes = config.inspector.max_data_bytes;
    let assets = config
        .tftp
        .root
        .canonicalize()
        .unwrap_or_else(|_| config.tftp.root.clone());
    let mut allowed: Vec<std::path::PathBuf> = config
        .conductor
        .file_url_allowed_paths
        .iter()
        .filter_map(|p| p.canonicalize().ok())
        .collect();
    if let Ok(d) = config.data.dir.canonicalize() {
        allowed.push(d);
    }
    let cache = conductor.image_cache();
    let boot = pxe::http::routes(pxe::http::BootHttp {
        backend: backend.clone(),
        public_url: public_url.to_string(),
        assets,
        allowed,
        cache,
        timeline,
        inspection_params: config.inspector.extra_kernel_params.clone(),
        vmedia: conductor.vmedia().dir.clone(),
    });
    let agent = api::agent::Agent {
        conductor: conductor.clone(),
        backend,
    };
    // Inspection data (the agent's logs ride along) has a limit of its own.
    let inspection = api::agent::inspection_routes(agent.clone())
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            inspection_max_bytes,
        ));
    let app = pxe::http::count_requests(
        boot.merge(api::agent::routes(agent))
            .layer(tower_http::limit::RequestBodyLimitLayer::new(
                h.max_body_bytes,
            ))
            .merge(inspection),
    );
    tracing::info!(listen = ?listener.local_addr().ok(), %public_url, "boot HTTP listening");
    let listener = BoundedListener::new(listener, h.max_connections, h.idle_timeout.0);
    tasks.spawn(async move {
        let serve = axum::serve(listener, app.into_make_service_with_connect_info::<Peer>())
            .with_graceful_shutdown(async move {
                let _ = stop.changed().await;
            });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "boot HTTP server failed");
        }
    });
}

/// Starts the TFTP server in `tasks`; returns where it listens. A TFTP
/// server that cannot start (no permission for port 69, say) is logged and
/// the appliance runs without it.
async fn start_tftp(
    config: &Config,
    timeline: Arc<pxe::Timeline>,
    stop: watch::Receiver<bool>,
    tasks: &mut JoinSet<()>,
) -> Option<std::net::SocketAddr> {
    let t = &config.tftp;
    let settings = pxe::tftp::Settings {
        root: t.root.clone(),
        max_blksize: t.max_blksize,
        max_windowsize: t.max_windowsize,
        timeout: t.timeout.0,
        retries: t.retries,
        max_transfers: t.max_transfers,
    };
    let started = async {
        let settings = pxe::tftp::check(settings)?;
        let sock = pxe::tftp::bind(t.listen).await?;
        anyhow::Ok((settings, sock))
    };
    match started.await {
        Ok((settings, sock)) => {
            let addr = sock.local_addr().ok();
            tasks.spawn(pxe::tftp::serve(sock, settings, Some(timeline), stop));
            addr
        }
        Err(e) => {
            tracing::warn!("TFTP is off: {e:#}");
            None
        }
    }
}
