//! The image cache: every deploy kernel, ramdisk, instance kernel/ramdisk
//! and ISO a node boots is fetched once (http(s):// downloads, file://
//! copies) into `<data dir>/cache/<sha256 of the content>`, however many
//! nodes ask at once (single flight per reference). Checksums are verified
//! (sha256, sha512, md5). The cache has a size cap; the least recently used
//! images go first, but never one a node in progress uses.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use md5::Md5;
use sha2::{Digest, Sha256, Sha512};
use tokio::io::AsyncWriteExt;
use tokio::sync::OnceCell;

use super::Source;
use crate::redact::redact;

/// A staged image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
}

/// An expected checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    pub algo: Algo,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algo {
    Md5,
    Sha256,
    Sha512,
}

impl Algo {
    pub fn parse(s: &str) -> Option<Algo> {
        match s.to_ascii_lowercase().as_str() {
            "md5" => Some(Algo::Md5),
            "sha256" => Some(Algo::Sha256),
            "sha512" => Some(Algo::Sha512),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Algo::Md5 => "md5",
            Algo::Sha256 => "sha256",
            Algo::Sha512 => "sha512",
        }
    }
}

impl Expect {
    /// The checksum a node's instance_info asks for: `image_os_hash_algo` +
    /// `image_os_hash_value`, else `image_checksum` (`algo:value`, or a bare
    /// value whose length says md5/sha256/sha512). Err: unusable values.
    pub fn from_instance_info(
        info: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Option<Expect>, String> {
        let text = |k: &str| {
            info.get(k)
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
        };
        if let (Some(a), Some(v)) = (text("image_os_hash_algo"), text("image_os_hash_value")) {
            let algo = Algo::parse(a).ok_or_else(|| {
                format!("instance_info/image_os_hash_algo {a:?} is not md5, sha256 or sha512")
            })?;
            return Ok(Some(Expect {
                algo,
                value: v.to_ascii_lowercase(),
            }));
        }
        let Some(c) = text("image_checksum") else {
            return Ok(None);
        };
        let (algo, value) = match c.split_once(':') {
            Some((a, v)) => (
                Algo::parse(a).ok_or_else(|| format!("instance_info/image_checksum algorithm {a:?} is not md5, sha256 or sha512"))?,
                v,
            ),
            None => (
                match c.len() {
                    32 => Algo::Md5,
                    64 => Algo::Sha256,
                    128 => Algo::Sha512,
                    n => return Err(format!("instance_info/image_checksum has {n} characters; expected an md5, sha256 or sha512 hex digest")),
                },
                c,
            ),
        };
        Ok(Some(Expect {
            algo,
            value: value.to_ascii_lowercase(),
        }))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Hashes in all three algorithms as bytes stream past.
struct Hashes {
    md5: Md5,
    sha256: Sha256,
    sha512: Sha512,
}

impl Hashes {
    fn new() -> Hashes {
        Hashes {
            md5: Md5::new(),
            sha256: Sha256::new(),
            sha512: Sha512::new(),
        }
    }

    fn update(&mut self, b: &[u8]) {
        self.md5.update(b);
        self.sha256.update(b);
        self.sha512.update(b);
    }

    fn finish(self) -> (String, String, String) {
        (
            hex(&self.md5.finalize()),
            hex(&self.sha256.finalize()),
            hex(&self.sha512.finalize()),
        )
    }
}

#[derive(Debug, Clone)]
struct Entry {
    staged: Staged,
    md5: String,
    sha512: String,
    last_used: SystemTime,
    /// For file:// sources: (size, mtime) when copied, to notice a change.
    source_stamp: Option<(u64, SystemTime)>,
}

/// (size, mtime) of a file:// source.
fn stamp(reference: &str) -> Option<(u64, SystemTime)> {
    let Ok(Source::File(path)) = Source::parse(reference) else {
        return None;
    };
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

/// One fetch that every caller of the same reference waits on.
type Flight = Arc<OnceCell<Result<Staged, String>>>;

/// Says whether a reference is in use by a node in progress.
pub type InUse = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Cache settings (`[images]` keys).
#[derive(Debug, Clone)]
pub struct Settings {
    pub dir: PathBuf,
    pub max_bytes: u64,
    /// Longest silence while downloading.
    pub read_timeout: Duration,
    /// Directories file:// references may point into.
    pub allowed: Vec<PathBuf>,
}

pub struct Cache {
    settings: Settings,
    http: reqwest::Client,
    entries: Mutex<HashMap<String, Entry>>,
    flights: Mutex<HashMap<String, Flight>>,
    in_use: RwLock<Option<InUse>>,
    /// Downloads and copies done (for tests and logs).
    pub fetches: AtomicU64,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("settings", &self.settings)
            .finish()
    }
}

impl Cache {
    pub fn new(settings: Settings, http: reqwest::Client) -> std::io::Result<Arc<Cache>> {
        std::fs::create_dir_all(&settings.dir)?;
        // Left-overs of a previous run are not indexed: start clean.
        for e in std::fs::read_dir(&settings.dir)?.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
        Ok(Arc::new(Cache {
            settings,
            http,
            entries: Mutex::new(HashMap::new()),
            flights: Mutex::new(HashMap::new()),
            in_use: RwLock::new(None),
            fetches: AtomicU64::new(0),
        }))
    }

    /// Tells the cache how to see which references nodes in progress use.
    pub fn set_in_use(&self, f: InUse) {
        *self.in_use.write().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }

    /// The staged copy of a reference, if there is one.
    pub fn staged(&self, reference: &str) -> Option<Staged> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let e = entries.get_mut(reference)?;
        e.last_used = SystemTime::now();
        e.staged.path.exists().then(|| e.staged.clone())
    }

    /// Stages a reference (once, however many callers ask at once) and
    /// checks `expect`. `progress` hears about long downloads.
    pub async fn stage(
        &self,
        reference: &str,
        expect: Option<&Expect>,
        progress: &(dyn Fn(String) + Send + Sync),
    ) -> Result<Staged, String> {
        // A file:// source that changed since it was copied is copied again.
        let changed = {
            let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            entries
                .get(reference)
                .and_then(|e| e.source_stamp)
                .is_some_and(|old| stamp(reference) != Some(old))
        };
        if changed {
            tracing::info!(image = %redact(reference), "the source changed since it was staged; staging it again");
            self.forget(reference);
        }
        let staged = match self.staged(reference) {
            Some(s) => s,
            None => {
                let cell = self
                    .flights
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(reference.to_string())
                    .or_default()
                    .clone();
                let result = cell
                    .get_or_init(|| async { self.fetch(reference, progress).await })
                    .await
                    .clone();
                self.flights
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(reference);
                result?
            }
        };
        if let Some(want) = expect {
            let got = {
                let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
                entries.get(reference).map(|e| match want.algo {
                    Algo::Md5 => e.md5.clone(),
                    Algo::Sha256 => e.staged.sha256.clone(),
                    Algo::Sha512 => e.sha512.clone(),
                })
            };
            if got.as_deref() != Some(want.value.as_str()) {
                self.forget(reference);
                return Err(format!(
                    "checksum mismatch for {}: {} is {}, expected {}",
                    redact(reference),
                    want.algo.name(),
                    got.unwrap_or_default(),
                    want.value
                ));
            }
        }
        Ok(staged)
    }

    fn forget(&self, reference: &str) {
        let removed = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(reference);
        if let Some(e) = removed {
            if !self.file_shared(&e.staged.path) {
                let _ = std::fs::remove_file(&e.staged.path);
            }
        }
    }

    fn file_shared(&self, path: &Path) -> bool {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .any(|e| e.staged.path == path)
    }

    async fn fetch(
        &self,
        reference: &str,
        progress: &(dyn Fn(String) + Send + Sync),
    ) -> Result<Staged, String> {
        let shown = redact(reference);
        let source = Source::parse(reference).map_err(|e| format!("{shown}: {e}"))?;
        let tmp = self
            .settings
            .dir
            .join(format!(".part-{:016x}", u64::from_le_bytes(rand8())));
        let result = self.fetch_into(&source, &shown, &tmp, progress).await;
        let source_stamp = stamp(reference);
        let (size, hashes) = match result {
            Ok(x) => x,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(e);
            }
        };
        let (md5, sha256, sha512) = hashes.finish();
        let path = self.settings.dir.join(&sha256);
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(|e| format!("cannot store {shown} in the image cache: {e}"))?;
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let staged = Staged { path, size, sha256 };
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                reference.to_string(),
                Entry {
                    staged: staged.clone(),
                    md5,
                    sha512,
                    last_used: SystemTime::now(),
                    source_stamp,
                },
            );
        tracing::info!(image = %shown, size, "image staged");
        self.evict(reference);
        Ok(staged)
    }

    async fn fetch_into(
        &self,
        source: &Source,
        shown: &str,
        tmp: &Path,
        progress: &(dyn Fn(String) + Send + Sync),
    ) -> Result<(u64, Hashes), String> {
        let mut out = tokio::fs::File::create(tmp).await.map_err(|e| {
            format!(
                "cannot write to the image cache {}: {e}",
                self.settings.dir.display()
            )
        })?;
        let mut hashes = Hashes::new();
        let mut size = 0u64;
        let mut next_report = 0u64;
        let timeout = self.settings.read_timeout;
        let mut report = |size: u64, total: Option<u64>| {
            if let Some(t) = total.filter(|t| *t >= 64 << 20) {
                if size >= next_report {
                    progress(format!(
                        "downloading {shown}: {} of {} MiB",
                        size >> 20,
                        t >> 20
                    ));
                    next_report += t / 10;
                }
            }
        };
        match source {
            Source::File(path) => {
                let real = super::check_allowed(path, &self.settings.allowed).await?;
                let mut f = tokio::fs::File::open(&real)
                    .await
                    .map_err(|e| format!("cannot read {}: {e}", real.display()))?;
                let total = f.metadata().await.ok().map(|m| m.len());
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    use tokio::io::AsyncReadExt;
                    let n = f
                        .read(&mut buf)
                        .await
                        .map_err(|e| format!("cannot read {}: {e}", real.display()))?;
                    if n == 0 {
                        break;
                    }
                    hashes.update(&buf[..n]);
                    out.write_all(&buf[..n])
                        .await
                        .map_err(|e| format!("image cache write failed: {e}"))?;
                    size += n as u64;
                    report(size, total);
                }
            }
            Source::Http(url) => {
                let resp = tokio::time::timeout(timeout, self.http.get(url).send())
                    .await
                    .map_err(|_| format!("{shown}: no answer within {} s", timeout.as_secs()))?
                    .map_err(|e| format!("{shown}: {}", super::describe(&e)))?;
                if !resp.status().is_success() {
                    return Err(format!(
                        "{shown}: the server answered HTTP {}",
                        resp.status()
                    ));
                }
                let total = resp.content_length();
                let mut resp = resp;
                loop {
                    let chunk = tokio::time::timeout(timeout, resp.chunk())
                        .await
                        .map_err(|_| {
                            format!("{shown}: the download stalled for {} s", timeout.as_secs())
                        })?
                        .map_err(|e| format!("{shown}: {}", super::describe(&e)))?;
                    let Some(chunk) = chunk else { break };
                    hashes.update(&chunk);
                    out.write_all(&chunk)
                        .await
                        .map_err(|e| format!("image cache write failed: {e}"))?;
                    size += chunk.len() as u64;
                    report(size, total);
                }
                if let Some(t) = total.filter(|t| *t != size) {
                    return Err(format!(
                        "{shown}: the download ended after {size} of {t} bytes"
                    ));
                }
            }
        }
        out.flush()
            .await
            .map_err(|e| format!("image cache write failed: {e}"))?;
        Ok((size, hashes))
    }

    /// Removes least-recently-used images until the cache fits, sparing
    /// `keep` and anything a node in progress uses.
    fn evict(&self, keep: &str) {
        let in_use = self
            .in_use
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let victims = {
            let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            let list: Vec<(String, u64, SystemTime, bool)> = entries
                .iter()
                .map(|(r, e)| {
                    let pinned = r == keep || in_use.as_ref().is_some_and(|f| f(r));
                    (r.clone(), e.staged.size, e.last_used, pinned)
                })
                .collect();
            victims(&list, self.settings.max_bytes)
        };
        for r in victims {
            tracing::info!(image = %redact(&r), "evicting an image from the cache (over [images] cache_size)");
            self.forget(&r);
        }
    }
}

/// Which references to evict so the total fits in `max`: least recently
/// used first, never a pinned one. (reference, size, last used, pinned).
pub fn victims(entries: &[(String, u64, SystemTime, bool)], max: u64) -> Vec<String> {
    let mut total: u64 = entries.iter().map(|e| e.1).sum();
    let mut order: Vec<&(String, u64, SystemTime, bool)> =
        entries.iter().filter(|e| !e.3).collect();
    order.sort_by_key(|e| e.2);
    let mut out = Vec::new();
    for e in order {
        if total <= max {
            break;
        }
        total -= e.1;
        out.push(e.0.clone());
    }
    out
}

fn rand8() -> [u8; 8] {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn eviction_table() {
        let t = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let e =
            |r: &str, size: u64, used: u64, pinned: bool| (r.to_string(), size, t(used), pinned);
        // (entries, max, victims)
        let cases = vec![
            (vec![e("a", 10, 1, false), e("b", 10, 2, false)], 30, vec![]),
            (
                vec![
                    e("a", 10, 1, false),
                    e("b", 10, 2, false),
                    e("c", 10, 3, false),
                ],
                20,
                vec!["a"],
            ),
            (
                vec![
                    e("a", 10, 1, true),
                    e("b", 10, 2, false),
                    e("c", 10, 3, false),
                ],
                20,
                vec!["b"],
            ),
            (
                vec![
                    e("a", 10, 1, true),
                    e("b", 10, 2, true),
                    e("c", 10, 3, true),
                ],
                5,
                vec![],
            ),
            (
                vec![
                    e("a", 10, 5, false),
                    e("b", 10, 2, false),
                    e("c", 30, 3, true),
                ],
                10,
                vec!["b", "a"],
            ),
        ];
        for (entries, max, want) in cases {
            assert_eq!(victims(&entries, max), want, "{entries:?} max {max}");
        }
    }

    #[test]
    fn expected_checksums_from_instance_info() {
        let m = |v: serde_json::Value| v.as_object().unwrap().clone();
        let sha = "a".repeat(64);
        let cases = vec![
            (json!({}), Ok(None)),
            (
                json!({"image_checksum": "0123456789abcdef0123456789ABCDEF"}),
                Ok(Some((
                    Algo::Md5,
                    "0123456789abcdef0123456789abcdef".to_string(),
                ))),
            ),
            (
                json!({"image_checksum": sha}),
                Ok(Some((Algo::Sha256, sha.clone()))),
            ),
            (
                json!({"image_checksum": format!("sha512:{}", "b".repeat(128))}),
                Ok(Some((Algo::Sha512, "b".repeat(128)))),
            ),
            (
                json!({"image_os_hash_algo": "SHA256", "image_os_hash_value": "ABC", "image_checksum": "x"}),
                Ok(Some((Algo::Sha256, "abc".to_string()))),
            ),
            (
                json!({"image_os_hash_algo": "crc32", "image_os_hash_value": "1"}),
                Err("not md5, sha256 or sha512"),
            ),
            (json!({"image_checksum": "abc"}), Err("has 3 characters")),
        ];
        for (info, want) in cases {
            let got = Expect::from_instance_info(&m(info.clone()));
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g.map(|e| (e.algo, e.value)), w, "{info}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{info}: {e}"),
                (g, w) => panic!("{info}: got {g:?}, want {w:?}"),
            }
        }
    }

    #[tokio::test]
    async fn one_fetch_for_many_callers_and_checksums_checked() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("k"), b"kernel").unwrap();
        let cache = Cache::new(
            Settings {
                dir: dir.path().join("cache"),
                max_bytes: 1 << 30,
                read_timeout: Duration::from_secs(5),
                allowed: vec![dir.path().canonicalize().unwrap()],
            },
            reqwest::Client::new(),
        )
        .unwrap();
        let r = format!("file://{}", src.join("k").display());
        let quiet = |_: String| {};
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let (c, r) = (cache.clone(), r.clone());
            set.spawn(async move { c.stage(&r, None, &quiet).await });
        }
        while let Some(x) = set.join_next().await {
            assert_eq!(x.unwrap().unwrap().size, 6);
        }
        assert_eq!(cache.fetches.load(Ordering::Relaxed), 1);
        let good = Expect {
            algo: Algo::Sha256,
            value: hex(&Sha256::digest(b"kernel")),
        };
        assert!(cache.stage(&r, Some(&good), &quiet).await.is_ok());
        let bad = Expect {
            algo: Algo::Md5,
            value: "0".repeat(32),
        };
        let e = cache.stage(&r, Some(&bad), &quiet).await.unwrap_err();
        assert!(e.contains("checksum mismatch") && e.contains("md5"), "{e}");
        assert!(cache.staged(&r).is_none(), "a mismatched image is dropped");
        // A changed source is staged again.
        let before = cache.fetches.load(Ordering::Relaxed);
        cache.stage(&r, None, &quiet).await.unwrap();
        std::fs::write(src.join("k"), b"kernel version two").unwrap();
        let again = cache.stage(&r, None, &quiet).await.unwrap();
        assert_eq!(again.size, 18);
        assert_eq!(cache.fetches.load(Ordering::Relaxed), before + 2);
    }
}
