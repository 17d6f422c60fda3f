//! The boot HTTP server on `[http] listen`: iPXE scripts (`/boot.ipxe`
//! chains to `/ipxe/{mac}`, rendered from the node's boot decision),
//! loaders (`/assets/…`, the TFTP root), the node's images
//! (`/images/{node}/{name}`, staged in the image cache), the virtual media
//! ISOs BMCs fetch (`/vmedia/<node>-deploy.iso`, `…-instance.iso`) and
//! `/metrics`.
//! Ironic's agent endpoints are served on the same listener from
//! `api::agent`. Read-only; bodies and connections are bounded.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, Method, Response};
use axum::routing::get;
use axum::Router;
use uuid::Uuid;

use super::files::{self, Refusal};
use super::{BootAction, BootBackend, NodeBoot};
use crate::model::{Mac, Severity};
use crate::net::Peer;

/// What the boot HTTP server needs.
pub struct BootHttp {
    pub backend: Arc<BootBackend>,
    /// Base URL booting nodes use, no trailing slash.
    pub public_url: String,
    /// `/assets/` root (the TFTP root), canonical.
    pub assets: PathBuf,
    /// Where `file://` image references may point.
    pub allowed: Vec<PathBuf>,
    /// Staged images (http(s) and file references are served from here).
    pub cache: Option<Arc<crate::images::cache::Cache>>,
    /// Node timelines.
    pub timeline: Arc<super::Timeline>,
    /// Extra kernel parameters of the inspection ramdisk
    /// (`[inspector] extra_kernel_params`).
    pub inspection_params: String,
    /// Where the virtual media ISOs are (`/vmedia/<node>-<which>.iso`).
    pub vmedia: Option<PathBuf>,
}

type Shared = Arc<BootHttp>;

/// The boot routes (without the listener's layers: see [`layers`]).
pub fn routes(state: BootHttp) -> Router {
    Router::new()
        .route("/boot.ipxe", get(boot_ipxe))
        .route("/ipxe/{mac}", get(node_script))
        .route("/assets/{*path}", get(asset))
        .route("/images/{node}/{name}", get(image))
        .route("/vmedia/{file}", get(vmedia))
        .route("/metrics", get(metrics))
        .with_state(Arc::new(state))
}

/// The boot listener's layers around everything it serves (the boot routes
/// and the agent's): request counts by route, and the body bound.
/// Counts requests per route in the metrics (routes merged in with their
/// own body limits are counted too).
pub fn count_requests(router: Router) -> Router {
    router.layer(axum::middleware::from_fn(count))
}

fn ipxe(text: String) -> Response<Body> {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from(text))
        .unwrap_or_default()
}

/// Fills `{name}` placeholders. Values are node data, so line breaks in
/// them become spaces: a value can never add a command to the script.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (k, v) in values {
        out = out.replace(&format!("{{{k}}}"), &v.replace(['\n', '\r'], " "));
    }
    out
}

const BOOT: &str = include_str!("../../boot-assets/templates/boot.ipxe");
const KERNEL: &str = include_str!("../../boot-assets/templates/kernel.ipxe");
const SANBOOT: &str = include_str!("../../boot-assets/templates/sanboot.ipxe");
const LOCAL: &str = include_str!("../../boot-assets/templates/local.ipxe");
const NONE: &str = include_str!("../../boot-assets/templates/none.ipxe");

/// Counts requests by route and status class, and file bytes served.
async fn count(req: axum::extract::Request, next: axum::middleware::Next) -> Response<Body> {
    let path = req.uri().path();
    let route = match path.split('/').nth(1).unwrap_or("") {
        "boot.ipxe" => "boot.ipxe",
        "ipxe" => "ipxe",
        "assets" => "assets",
        "images" => "images",
        "vmedia" => "vmedia",
        "metrics" => "metrics",
        "v1" if path.starts_with("/v1/lookup") => "lookup",
        "v1" if path.starts_with("/v1/continue_inspection") => "continue_inspection",
        "v1" => "heartbeat",
        _ => "other",
    };
    let head = req.method() == Method::HEAD;
    let resp = next.run(req).await;
    crate::metrics::http(route, resp.status().as_u16());
    if !head && matches!(route, "assets" | "images" | "vmedia") && resp.status().is_success() {
        if let Some(n) = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
        {
            crate::metrics::http_bytes(n);
        }
    }
    resp
}

async fn metrics(State(s): State<Shared>) -> Response<Body> {
    let nodes = s.backend.nodes_by_state();
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain; version=0.0.4")
        .body(Body::from(crate::metrics::render(&nodes)))
        .unwrap_or_default()
}

async fn boot_ipxe(State(s): State<Shared>) -> Response<Body> {
    ipxe(fill(BOOT, &[("public_url", &s.public_url)]))
}

/// The URL iPXE fetches an image reference from.
fn image_url(s: &BootHttp, node: Uuid, name: &str, reference: &str) -> Result<String, String> {
    let remote = reference.starts_with("http://") || reference.starts_with("https://");
    if remote && s.cache.is_none() {
        Ok(reference.to_string())
    } else if remote || reference.starts_with("file://") {
        Ok(format!("{}/images/{node}/{name}", s.public_url))
    } else {
        Err(format!(
            "{name} {reference:?} is neither an http(s):// URL nor a file:// path"
        ))
    }
}

fn basename(url: &str) -> &str {
    url.rsplit('/')
        .next()
        .filter(|b| !b.is_empty())
        .unwrap_or("initrd")
}

/// Renders the per-MAC script from the node's boot decision.
pub fn render(s: &BootHttp, mac: Mac, who: Option<&NodeBoot>) -> String {
    let Some(n) = who else {
        return fill(NONE, &[("why", &format!("{mac} is not enrolled"))]);
    };
    let label = n.label();
    let fail = |why: String| fill(NONE, &[("why", &format!("node {label}: {why}"))]);
    match &n.action {
        BootAction::LocalDisk => fill(LOCAL, &[("node", &label)]),
        BootAction::Nothing(why) => fail(why.clone()),
        BootAction::VirtualMedia => fail("it boots from virtual media, not the network".into()),
        BootAction::Network(what) => {
            let im = &n.images;
            let state = n.state.to_string();
            let common = [
                ("node", label.as_str()),
                ("state", state.as_str()),
                ("what", what.describe()),
                ("public_url", s.public_url.as_str()),
            ];
            if let Some(iso) = &im.iso {
                return match image_url(s, n.node, "boot_iso", iso) {
                    Ok(u) => fill(SANBOOT, &[&common[..], &[("iso_url", u.as_str())]].concat()),
                    Err(e) => fail(e),
                };
            }
            let (kn, rn) = if im.deploy {
                ("deploy_kernel", "deploy_ramdisk")
            } else {
                ("kernel", "ramdisk")
            };
            let (Some(k), Some(r)) = (&im.kernel, &im.ramdisk) else {
                return fail(format!("{what}: the node has no {kn} and {rn}"));
            };
            let (ku, ru) = match (image_url(s, n.node, kn, k), image_url(s, n.node, rn, r)) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), _) | (_, Err(e)) => return fail(e),
            };
            let append = if im.append.is_empty() {
                String::new()
            } else {
                format!(" {}", im.append)
            };
            let root = if im.deploy { "" } else { "root=/dev/ram0 " };
            // The agent posts what it finds here before it looks itself up.
            let inspect = if im.inspect {
                let extra = s.inspection_params.trim();
                format!(
                    " ipa-inspection-callback-url={}/v1/continue_inspection{}{extra}",
                    s.public_url,
                    if extra.is_empty() { "" } else { " " }
                )
            } else {
                String::new()
            };
            let append = format!("{inspect}{append}");
            fill(
                KERNEL,
                &[
                    &common[..],
                    &[
                        ("kernel_url", ku.as_str()),
                        ("initrd_url", ru.as_str()),
                        ("initrd_name", basename(&ru)),
                        ("root", root),
                        ("append", append.as_str()),
                    ],
                ]
                .concat(),
            )
        }
    }
}

async fn node_script(State(s): State<Shared>, Path(mac): Path<String>) -> Response<Body> {
    let Ok(mac) = mac.parse::<Mac>() else {
        return Refusal::BadRequest.text(&format!(
            "#!ipxe\necho rackboot: {mac:?} is not a MAC address\nexit\n"
        ));
    };
    let who = s.backend.boot_for(mac);
    let script = render(&s, mac, who.as_ref());
    match &who {
        Some(n) => {
            let action = first_action(&script);
            tracing::info!(node = %n.label(), %mac, "HTTP boot script served ({action})");
            s.timeline.note(
                n.node,
                Severity::Info,
                "http",
                format!("HTTP boot script for {mac} served: {action}"),
            );
        }
        None => tracing::info!(%mac, "HTTP boot script for an unknown MAC: exit"),
    }
    ipxe(script)
}

/// The first command of a script that is not a comment or echo, for logs.
fn first_action(script: &str) -> &str {
    script
        .lines()
        .skip(1)
        .find(|l| !l.starts_with('#') && !l.starts_with("echo") && !l.starts_with("imgfree"))
        .unwrap_or("")
}

fn content_type(path: &std::path::Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("ipxe") => "text/plain; charset=utf-8",
        Some("iso") => "application/x-iso9660-image",
        Some("efi") => "application/efi",
        _ => "application/octet-stream",
    }
}

async fn asset(
    State(s): State<Shared>,
    Path(path): Path<String>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    method: Method,
    headers: HeaderMap,
) -> Response<Body> {
    match super::tftp::resolve(&s.assets, &path) {
        Ok(p) => {
            if let (Some(node), true) = (s.timeline.node_of(peer.ip()), method == Method::GET) {
                s.timeline.note(
                    node,
                    Severity::Info,
                    "http",
                    format!("HTTP /assets/{path} requested by {}", peer.ip()),
                );
            }
            files::serve(&p, &method, &headers, content_type(&p)).await
        }
        Err((_, why)) => Refusal::NotFound.text(&format!("{why}\n")),
    }
}

/// A node's virtual media ISO, for its BMC (ranges served: BMCs read ISOs
/// in many partial requests). Only the names the boot interface writes.
async fn vmedia(
    State(s): State<Shared>,
    Path(file): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response<Body> {
    let node = file
        .strip_suffix("-deploy.iso")
        .or_else(|| file.strip_suffix("-instance.iso"))
        .and_then(|u| u.parse::<Uuid>().ok());
    let (Some(node), Some(dir)) = (node, &s.vmedia) else {
        return Refusal::NotFound.text("no such virtual media ISO\n");
    };
    let first = headers
        .get(header::RANGE)
        .and_then(|r| r.to_str().ok())
        .is_none_or(|r| r.trim_start_matches("bytes=").starts_with("0-"));
    if method == Method::GET && first {
        s.timeline.note(
            node,
            Severity::Info,
            "http",
            format!("HTTP /vmedia/{file} requested (virtual media)"),
        );
    }
    files::serve(
        &dir.join(&file),
        &method,
        &headers,
        "application/x-iso9660-image",
    )
    .await
}

async fn image(
    State(s): State<Shared>,
    Path((node, name)): Path<(Uuid, String)>,
    method: Method,
    headers: HeaderMap,
) -> Response<Body> {
    let Some(n) = s.backend.by_node(node) else {
        return Refusal::NotFound.text("no such node with a port\n");
    };
    // Only what the node boots now is served.
    let im = &n.images;
    let reference = match name.as_str() {
        "deploy_kernel" | "kernel" if (name == "deploy_kernel") == im.deploy => {
            im.kernel.as_deref()
        }
        "deploy_ramdisk" | "ramdisk" if (name == "deploy_ramdisk") == im.deploy => {
            im.ramdisk.as_deref()
        }
        "boot_iso" => im.iso.as_deref(),
        "image" => im.image.as_deref(),
        _ => None,
    };
    let Some(reference) = reference else {
        return Refusal::NotFound.text(&format!("node {} does not boot a {name} now\n", n.label()));
    };
    // From the cache (staged at adopt or deploy; staged now after a restart).
    if let Some(cache) = &s.cache {
        let label = n.label();
        let progress = |m: String| tracing::info!(node = %label, "{m}");
        return match cache.stage(reference, None, &progress).await {
            Ok(staged) => {
                // One event per download, not one per range read (sanboot).
                let first = headers
                    .get(header::RANGE)
                    .and_then(|r| r.to_str().ok())
                    .is_none_or(|r| r.trim_start_matches("bytes=").starts_with("0-"));
                // sanboot starts with a HEAD, then reads ranges anywhere.
                let iso_start = method == Method::HEAD && name == "boot_iso";
                if (method == Method::GET && first) || iso_start {
                    s.timeline.note(
                        n.node,
                        Severity::Info,
                        "http",
                        format!("HTTP {name} requested ({} bytes)", staged.size),
                    );
                }
                files::serve(
                    &staged.path,
                    &method,
                    &headers,
                    content_type(std::path::Path::new(reference)),
                )
                .await
            }
            Err(e) => {
                tracing::warn!(node = %n.label(), "cannot serve {name}: {e}");
                Refusal::BadGateway.text(&format!("{e}\n"))
            }
        };
    }
    let Some(path) = reference.strip_prefix("file://") else {
        return Refusal::NotFound.text("not a local image\n");
    };
    let path = std::path::Path::new(path);
    let allowed = path
        .canonicalize()
        .ok()
        .filter(|p| s.allowed.iter().any(|a| p.starts_with(a)));
    match allowed {
        Some(p) => files::serve(&p, &method, &headers, content_type(&p)).await,
        None => {
            Refusal::Forbidden.text("the image is outside [conductor] file_url_allowed_paths\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_cannot_add_script_lines() {
        let t = fill(
            "kernel x {append} || goto failed\n",
            &[("append", "a\nshell\r\nreboot")],
        );
        assert_eq!(t, "kernel x a shell  reboot || goto failed\n");
        assert_eq!(t.lines().count(), 1);
    }
}
