//! A small ISO 9660 (ECMA-119) writer with Rock Ridge names, enough for the
//! images the appliance builds itself: OpenStack config drives (volume
//! `config-2`, as openstacksdk's `genisoimage -J -r` makes them).
//!
//! Layout: the 16 system-area sectors, the primary volume descriptor, the
//! terminator, the L and M path tables, every directory (breadth first),
//! then every file, each sector aligned. Each directory record carries
//! Rock Ridge `PX` (mode) and `NM` (the real name) entries; the root's `.`
//! record starts with `SP` and `ER`, which is how Linux (and isoinfo, and
//! blkid) find Rock Ridge. The ISO names underneath are level-2 d-character
//! names (`META_DATA.JSON;1`), for readers without Rock Ridge.
//!
//! Bootable images (El Torito, [`ElTorito`]) add a boot record volume
//! descriptor after the primary one and a boot catalog after the path
//! tables: a BIOS no-emulation entry (ISOLINUX, patched with its boot info
//! table as `mkisofs -boot-info-table` does) and a UEFI section (platform
//! 0xEF) naming an EFI system partition image. Large files (a kernel, a
//! ramdisk) are streamed from disk into the image ([`Data::File`]), never
//! held in memory.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

pub const SECTOR: usize = 2048;
/// Longest name one entry may have (the record must fit in 255 bytes).
pub const MAX_NAME: usize = 120;
/// Deepest directory nesting (ECMA-119 allows 8 levels).
pub const MAX_DEPTH: usize = 8;

/// What a file of the image holds.
#[derive(Debug, Clone)]
pub enum Data {
    Bytes(Vec<u8>),
    /// Copied from this file when the image is written; its size is read
    /// when the layout is made, and a file that changed size in between
    /// fails the write.
    File(PathBuf),
}

/// The boot entries of a bootable image: paths of files in the image.
#[derive(Debug, Clone, Default)]
pub struct ElTorito {
    /// A no-emulation BIOS boot image (ISOLINUX's `isolinux.bin`), loaded
    /// four 512-byte sectors at a time and patched with a boot info table.
    pub bios: Option<String>,
    /// An EFI system partition image (FAT) holding `EFI/BOOT/BOOTX64.EFI`.
    pub efi: Option<String>,
}

enum Entry {
    Dir(BTreeMap<String, Entry>),
    File(Data),
}

/// One directory, as laid out: its records and where it lands.
struct Dir {
    parent: usize,
    iso_name: Vec<u8>,
    /// (iso name, real name, child: a directory index or a file index)
    children: Vec<(Vec<u8>, String, Child)>,
    lba: u32,
    size: u32,
}

#[derive(Clone, Copy)]
enum Child {
    Dir(usize),
    File(usize),
}

/// Builds an image holding `files` (slash-separated paths, directories made
/// as needed) with the given volume label.
pub fn build(
    volume_id: &str,
    files: &[(String, Vec<u8>)],
    now: jiff::Timestamp,
) -> Result<Vec<u8>, String> {
    let files: Vec<(String, Data)> = files
        .iter()
        .map(|(p, d)| (p.clone(), Data::Bytes(d.clone())))
        .collect();
    let mut out = Vec::new();
    write_image(&mut out, volume_id, files, None, now)?;
    Ok(out)
}

/// Largest BIOS boot image (ISOLINUX's is about 40 KiB).
const MAX_BIOS_IMAGE: u64 = 1 << 20;

fn data_len(d: &Data) -> Result<u64, String> {
    match d {
        Data::Bytes(b) => Ok(b.len() as u64),
        Data::File(p) => std::fs::metadata(p)
            .map(|m| m.len())
            .map_err(|e| format!("cannot read {}: {e}", p.display())),
    }
}

/// Writes an image holding `files` to `w`, bootable when `boot` names its
/// boot images; returns the bytes written. The layout is made first (sizes
/// only), then every sector is written once, in order.
pub fn write_image(
    w: &mut impl Write,
    volume_id: &str,
    files: Vec<(String, Data)>,
    boot: Option<&ElTorito>,
    now: jiff::Timestamp,
) -> Result<u64, String> {
    if volume_id.is_empty() || volume_id.len() > 32 || !volume_id.is_ascii() {
        return Err(format!(
            "the volume label {volume_id:?} must be 1 to 32 ASCII characters"
        ));
    }
    let mut root = BTreeMap::new();
    let mut bios_image: Option<Vec<u8>> = None;
    let mut efi_path: Option<String> = None;
    if let Some(b) = boot {
        if b.bios.is_none() && b.efi.is_none() {
            return Err("a bootable image needs a BIOS or an EFI boot image".into());
        }
        efi_path = b.efi.clone();
    }
    for (path, data) in files {
        let data = match (&data, boot.and_then(|b| b.bios.as_deref())) {
            // The BIOS image is patched, so it is held in memory.
            (Data::File(p), Some(bios)) if bios.trim_matches('/') == path.trim_matches('/') => {
                if data_len(&data)? > MAX_BIOS_IMAGE {
                    return Err(format!(
                        "the BIOS boot image {} is larger than 1 MiB",
                        p.display()
                    ));
                }
                Data::Bytes(
                    std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?,
                )
            }
            _ => data,
        };
        insert(&mut root, &path, data)?;
    }

    // Breadth first: the order of the path tables (level, parent, name).
    let mut dirs: Vec<Dir> = Vec::new();
    let mut file_data: Vec<(String, Data)> = Vec::new();
    let mut queue: Vec<(usize, String, BTreeMap<String, Entry>)> = vec![(0, String::new(), root)];
    let mut next = 0;
    dirs.push(Dir {
        parent: 0,
        iso_name: vec![0],
        children: Vec::new(),
        lba: 0,
        size: 0,
    });
    while next < queue.len() {
        let (me, prefix, entries) = std::mem::take(&mut queue[next]);
        next += 1;
        let mut children = Vec::new();
        let mut taken = std::collections::HashSet::new();
        let mut named: Vec<(Vec<u8>, String, Entry)> = entries
            .into_iter()
            .map(|(name, e)| {
                let iso = unique_iso_name(&name, matches!(e, Entry::Dir(_)), &mut taken);
                (iso, name, e)
            })
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        for (iso, name, e) in named {
            let full = format!("{prefix}/{name}");
            match e {
                Entry::Dir(sub) => {
                    let idx = dirs.len();
                    dirs.push(Dir {
                        parent: me,
                        iso_name: iso.clone(),
                        children: Vec::new(),
                        lba: 0,
                        size: 0,
                    });
                    queue.push((idx, full, sub));
                    children.push((iso, name, Child::Dir(idx)));
                }
                Entry::File(data) => {
                    file_data.push((full, data));
                    children.push((iso, name, Child::File(file_data.len() - 1)));
                }
            }
        }
        dirs[me].children = children;
    }
    let find = |want: &str| {
        let want = format!("/{}", want.trim_matches('/'));
        file_data.iter().position(|(p, _)| *p == want)
    };
    let bios_file = match boot.and_then(|b| b.bios.as_deref()) {
        Some(p) => {
            Some(find(p).ok_or_else(|| format!("the BIOS boot image {p} is not in the image"))?)
        }
        None => None,
    };
    let efi_file = match efi_path.as_deref() {
        Some(p) => {
            Some(find(p).ok_or_else(|| format!("the EFI boot image {p} is not in the image"))?)
        }
        None => None,
    };
    if let Some(i) = bios_file {
        if let Data::Bytes(b) = &file_data[i].1 {
            if b.len() < 64 {
                return Err("the BIOS boot image is too small to hold a boot info table".into());
            }
            bios_image = Some(b.clone());
        }
    }
    let sizes: Vec<u64> = file_data
        .iter()
        .map(|(_, d)| data_len(d))
        .collect::<Result<_, _>>()?;
    if let Some(big) = sizes.iter().find(|s| **s > u32::MAX as u64) {
        return Err(format!(
            "a file of {big} bytes is larger than ISO 9660 allows (4 GiB)"
        ));
    }

    // Sizes first (records do not depend on where things land), then places.
    let pt_size: usize = dirs
        .iter()
        .map(|d| 8 + d.iso_name.len() + d.iso_name.len() % 2)
        .sum();
    let pt_sectors = pt_size.div_ceil(SECTOR) as u32;
    let descriptors_end = if boot.is_some() { 19u32 } else { 18 };
    let l_table = descriptors_end;
    let m_table = l_table + pt_sectors;
    let mut lba = m_table + pt_sectors;
    let catalog = boot.map(|_| {
        lba += 1;
        lba - 1
    });
    for i in 0..dirs.len() {
        let size = dir_extent(&dirs, i, &[], &[], now, true).len() as u32;
        dirs[i].size = size;
        dirs[i].lba = lba;
        lba += size / SECTOR as u32;
    }
    let mut file_lba = Vec::with_capacity(file_data.len());
    for size in &sizes {
        file_lba.push(lba);
        lba += ((*size as usize).div_ceil(SECTOR).max(1)) as u32;
    }
    let total = lba;

    let mut w = Counting { inner: w, n: 0 };
    let w = &mut w;
    fn emit(w: &mut impl Write, data: &[u8]) -> Result<(), String> {
        w.write_all(data)
            .map_err(|e| format!("cannot write the image: {e}"))
    }
    emit(w, &vec![0u8; 16 * SECTOR])?;
    let root_record = record(&[0], dirs[0].lba, dirs[0].size, true, &[], now);
    emit(
        w,
        &pvd(
            volume_id,
            total,
            pt_size as u32,
            l_table,
            m_table,
            &root_record,
            now,
        ),
    )?;
    if let Some(cat) = catalog {
        emit(w, &boot_record(cat))?;
    }
    let mut term = vec![0u8; SECTOR];
    term[0] = 255;
    term[1..6].copy_from_slice(b"CD001");
    term[6] = 1;
    emit(w, &term)?;
    let (l, m) = path_tables(&dirs);
    for t in [l, m] {
        emit(w, &sector_padded(t))?;
    }
    if catalog.is_some() {
        let entry = |i: usize| (file_lba[i], sizes[i]);
        emit(w, &boot_catalog(bios_file.map(entry), efi_file.map(entry)))?;
    }
    let sizes32: Vec<u32> = sizes.iter().map(|s| *s as u32).collect();
    for i in 0..dirs.len() {
        emit(w, &dir_extent(&dirs, i, &file_lba, &sizes32, now, false))?;
    }
    for (i, (path, data)) in file_data.iter().enumerate() {
        match data {
            Data::Bytes(b) if Some(i) == bios_file => {
                let mut b = bios_image.clone().unwrap_or_else(|| b.clone());
                boot_info_table(&mut b, file_lba[i]);
                emit(w, &sector_padded(b))?;
            }
            Data::Bytes(b) => emit(w, &sector_padded(b.clone()))?,
            Data::File(p) => {
                let mut f = std::fs::File::open(p)
                    .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
                let copied = std::io::copy(&mut (&mut f).take(sizes[i]), &mut *w)
                    .map_err(|e| format!("cannot copy {} into the image: {e}", p.display()))?;
                if copied != sizes[i] {
                    return Err(format!(
                        "{} ({path}) changed size while the image was written",
                        p.display()
                    ));
                }
                let pad = (copied as usize).div_ceil(SECTOR).max(1) * SECTOR - copied as usize;
                emit(w, &vec![0u8; pad])?;
            }
        }
    }
    w.flush()
        .map_err(|e| format!("cannot write the image: {e}"))?;
    debug_assert_eq!(w.n, total as u64 * SECTOR as u64);
    Ok(w.n)
}

/// A writer that counts what went through it.
struct Counting<'a, W: Write> {
    inner: &'a mut W,
    n: u64,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

use std::io::Read as _;

fn sector_padded(mut v: Vec<u8>) -> Vec<u8> {
    v.resize(v.len().div_ceil(SECTOR).max(1) * SECTOR, 0);
    v
}

/// The El Torito boot record volume descriptor, pointing at the catalog.
fn boot_record(catalog: u32) -> Vec<u8> {
    let mut v = vec![0u8; SECTOR];
    v[1..6].copy_from_slice(b"CD001");
    v[6] = 1;
    let id = b"EL TORITO SPECIFICATION";
    v[7..7 + id.len()].copy_from_slice(id);
    v[71..75].copy_from_slice(&catalog.to_le_bytes());
    v
}

/// The boot catalog: a validation entry, the default (BIOS) entry, and a
/// final section for UEFI. Each entry is (LBA, size in bytes).
fn boot_catalog(bios: Option<(u32, u64)>, efi: Option<(u32, u64)>) -> Vec<u8> {
    let mut c = vec![0u8; SECTOR];
    // Validation entry: platform of the default entry, checksum, 55 AA.
    c[0] = 1;
    c[1] = if bios.is_some() { 0 } else { 0xEF };
    c[30] = 0x55;
    c[31] = 0xAA;
    let sum = c[..32].chunks(2).fold(0u16, |a, w| {
        a.wrapping_add(u16::from_le_bytes([w[0], w[1]]))
    });
    c[28..30].copy_from_slice(&0u16.wrapping_sub(sum).to_le_bytes());
    let entry = |e: &mut [u8], (lba, size): (u32, u64), sectors: u16| {
        e[0] = 0x88; // bootable
        e[1] = 0; // no emulation
        e[6..8].copy_from_slice(&sectors.to_le_bytes());
        e[8..12].copy_from_slice(&lba.to_le_bytes());
        let _ = size;
    };
    // 512-byte sectors of an EFI image, as xorriso counts them (capped).
    let efi_sectors = |size: u64| size.div_ceil(512).min(u16::MAX as u64) as u16;
    match (bios, efi) {
        (Some(b), efi) => {
            // ISOLINUX: load 4 sectors; it loads the rest itself.
            entry(&mut c[32..64], b, 4);
            if let Some(e) = efi {
                c[64] = 0x91; // final section header
                c[65] = 0xEF;
                c[66..68].copy_from_slice(&1u16.to_le_bytes());
                entry(&mut c[96..128], e, efi_sectors(e.1));
            }
        }
        (None, Some(e)) => entry(&mut c[32..64], e, efi_sectors(e.1)),
        (None, None) => {}
    }
    c
}

/// Writes ISOLINUX's boot info table (bytes 8..64): the primary volume
/// descriptor's LBA, the image's LBA and length, and the 32-bit sum of the
/// image from byte 64 on.
fn boot_info_table(image: &mut [u8], lba: u32) {
    let len = image.len() as u32;
    let sum = image[64..].chunks(4).fold(0u32, |a, c| {
        let mut w = [0u8; 4];
        w[..c.len()].copy_from_slice(c);
        a.wrapping_add(u32::from_le_bytes(w))
    });
    image[8..12].copy_from_slice(&16u32.to_le_bytes());
    image[12..16].copy_from_slice(&lba.to_le_bytes());
    image[16..20].copy_from_slice(&len.to_le_bytes());
    image[20..24].copy_from_slice(&sum.to_le_bytes());
    image[24..64].fill(0);
}

fn insert(dir: &mut BTreeMap<String, Entry>, path: &str, data: Data) -> Result<(), String> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() || parts.len() > MAX_DEPTH {
        return Err(format!(
            "{path:?}: a path needs 1 to {MAX_DEPTH} components"
        ));
    }
    let mut here = dir;
    for (i, part) in parts.iter().enumerate() {
        if *part == "." || *part == ".." || part.len() > MAX_NAME || part.contains('\0') {
            return Err(format!(
                "{path:?}: {part:?} is not a usable name (at most {MAX_NAME} bytes, not . or ..)"
            ));
        }
        if i + 1 == parts.len() {
            if here.contains_key(*part) {
                return Err(format!("{path:?} is given twice"));
            }
            here.insert(part.to_string(), Entry::File(data));
            return Ok(());
        }
        let e = here
            .entry(part.to_string())
            .or_insert_with(|| Entry::Dir(BTreeMap::new()));
        match e {
            Entry::Dir(d) => here = d,
            Entry::File(_) => return Err(format!("{path:?}: {part:?} is a file")),
        }
    }
    unreachable!("the loop returns at the last component")
}

/// A level-2 name: d-characters (A-Z, 0-9, _), at most 30 bytes, files
/// with one dot and `;1`; made unique within its directory.
fn unique_iso_name(
    name: &str,
    dir: bool,
    taken: &mut std::collections::HashSet<Vec<u8>>,
) -> Vec<u8> {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| match c.to_ascii_uppercase() {
                c @ ('A'..='Z' | '0'..='9' | '_') => c,
                _ => '_',
            })
            .collect()
    };
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !dir && !s.is_empty() => (clean(s), clean(e)),
        _ => (clean(name), String::new()),
    };
    let ext: String = ext.chars().take(8).collect();
    for n in 0u32.. {
        let suffix = if n == 0 {
            String::new()
        } else {
            format!("_{n}")
        };
        let room = 30 - ext.len() - usize::from(!dir) - suffix.len();
        let s: String = stem.chars().take(room).collect();
        let candidate = if dir {
            format!("{s}{suffix}")
        } else {
            format!("{s}{suffix}.{ext};1")
        };
        if taken.insert(candidate.as_bytes().to_vec()) {
            return candidate.into_bytes();
        }
    }
    unreachable!("some suffix is free")
}

fn both16(v: u16) -> [u8; 4] {
    let (l, b) = (v.to_le_bytes(), v.to_be_bytes());
    [l[0], l[1], b[0], b[1]]
}

fn both32(v: u32) -> [u8; 8] {
    let (l, b) = (v.to_le_bytes(), v.to_be_bytes());
    [l[0], l[1], l[2], l[3], b[0], b[1], b[2], b[3]]
}

fn record_date(now: jiff::Timestamp) -> [u8; 7] {
    let t = now.to_zoned(jiff::tz::TimeZone::UTC).datetime();
    [
        (t.year() - 1900).clamp(0, 255) as u8,
        t.month() as u8,
        t.day() as u8,
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
        0,
    ]
}

/// One directory record; `su` is its system use area (Rock Ridge).
fn record(id: &[u8], lba: u32, size: u32, dir: bool, su: &[u8], now: jiff::Timestamp) -> Vec<u8> {
    let mut r = vec![0u8; 33];
    r[2..10].copy_from_slice(&both32(lba));
    r[10..18].copy_from_slice(&both32(size));
    r[18..25].copy_from_slice(&record_date(now));
    r[25] = if dir { 2 } else { 0 };
    r[28..32].copy_from_slice(&both16(1));
    r[32] = id.len() as u8;
    r.extend_from_slice(id);
    if id.len().is_multiple_of(2) {
        r.push(0);
    }
    r.extend_from_slice(su);
    if r.len() % 2 == 1 {
        r.push(0);
    }
    r[0] = r.len() as u8;
    r
}

/// Rock Ridge `PX`: POSIX mode, links, uid 0, gid 0 (RRIP 1.10, 36 bytes).
fn px(mode: u32, links: u32) -> Vec<u8> {
    let mut e = vec![b'P', b'X', 36, 1];
    for v in [mode, links, 0, 0] {
        e.extend_from_slice(&both32(v));
    }
    e
}

/// Rock Ridge `NM`: the entry's real name.
fn nm(name: &str) -> Vec<u8> {
    let mut e = vec![b'N', b'M', (5 + name.len()) as u8, 1, 0];
    e.extend_from_slice(name.as_bytes());
    e
}

/// The root `.` record's opening: `SP` (SUSP in use, nothing skipped) and
/// `ER` (the Rock Ridge extension is present).
fn sp_er() -> Vec<u8> {
    let mut e = vec![b'S', b'P', 7, 1, 0xBE, 0xEF, 0];
    let id = b"RRIP_1991A";
    e.extend_from_slice(&[b'E', b'R', (8 + id.len()) as u8, 1, id.len() as u8, 0, 0, 1]);
    e.extend_from_slice(id);
    e
}

const DIR_MODE: u32 = 0o040555;
const FILE_MODE: u32 = 0o100444;

/// The records of directory `i`, sector-packed (no record crosses a sector
/// boundary) and padded to whole sectors. With `sizing`, places are zeros.
fn dir_extent(
    dirs: &[Dir],
    i: usize,
    file_lba: &[u32],
    file_size: &[u32],
    now: jiff::Timestamp,
    sizing: bool,
) -> Vec<u8> {
    let d = &dirs[i];
    let p = &dirs[d.parent];
    let subdirs = d
        .children
        .iter()
        .filter(|c| matches!(c.2, Child::Dir(_)))
        .count() as u32;
    let mut dot_su = if i == 0 { sp_er() } else { Vec::new() };
    dot_su.extend(px(DIR_MODE, 2 + subdirs));
    let mut records = vec![
        record(&[0], d.lba, d.size, true, &dot_su, now),
        record(&[1], p.lba, p.size, true, &px(DIR_MODE, 2), now),
    ];
    for (iso, name, child) in &d.children {
        let (lba, size, dir, mode, links) = match *child {
            Child::Dir(j) => (dirs[j].lba, dirs[j].size, true, DIR_MODE, 2),
            Child::File(f) if !sizing => (file_lba[f], file_size[f], false, FILE_MODE, 1),
            Child::File(_) => (0, 0, false, FILE_MODE, 1),
        };
        let mut su = px(mode, links);
        su.extend(nm(name));
        records.push(record(iso, lba, size, dir, &su, now));
    }
    let mut out = Vec::new();
    for r in records {
        let used = out.len() % SECTOR;
        if used + r.len() > SECTOR {
            out.resize(out.len() + SECTOR - used, 0);
        }
        out.extend(r);
    }
    out.resize(out.len().div_ceil(SECTOR).max(1) * SECTOR, 0);
    out
}

fn path_tables(dirs: &[Dir]) -> (Vec<u8>, Vec<u8>) {
    let (mut l, mut m) = (Vec::new(), Vec::new());
    for d in dirs {
        let parent = (d.parent + 1) as u16;
        for (t, le) in [(&mut l, true), (&mut m, false)] {
            t.push(d.iso_name.len() as u8);
            t.push(0);
            t.extend(if le {
                d.lba.to_le_bytes()
            } else {
                d.lba.to_be_bytes()
            });
            t.extend(if le {
                parent.to_le_bytes()
            } else {
                parent.to_be_bytes()
            });
            t.extend_from_slice(&d.iso_name);
            if d.iso_name.len() % 2 == 1 {
                t.push(0);
            }
        }
    }
    (l, m)
}

fn padded(field: &mut [u8], text: &str) {
    field.fill(b' ');
    field[..text.len()].copy_from_slice(text.as_bytes());
}

fn pvd(
    volume_id: &str,
    total: u32,
    pt_size: u32,
    l_table: u32,
    m_table: u32,
    root: &[u8],
    now: jiff::Timestamp,
) -> Vec<u8> {
    let mut v = vec![0u8; SECTOR];
    v[0] = 1;
    v[1..6].copy_from_slice(b"CD001");
    v[6] = 1;
    padded(&mut v[8..40], "LINUX");
    padded(&mut v[40..72], volume_id);
    v[80..88].copy_from_slice(&both32(total));
    v[120..124].copy_from_slice(&both16(1));
    v[124..128].copy_from_slice(&both16(1));
    v[128..132].copy_from_slice(&both16(SECTOR as u16));
    v[132..140].copy_from_slice(&both32(pt_size));
    v[140..144].copy_from_slice(&l_table.to_le_bytes());
    v[148..152].copy_from_slice(&m_table.to_be_bytes());
    v[156..190].copy_from_slice(root);
    padded(&mut v[190..318], "");
    padded(&mut v[318..446], "RACKBOOT");
    padded(&mut v[446..574], "");
    padded(&mut v[574..702], "RACKBOOT");
    padded(&mut v[702..813], "");
    let t = now.to_zoned(jiff::tz::TimeZone::UTC).datetime();
    let stamp = format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}00",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    for at in [813, 830] {
        v[at..at + 16].copy_from_slice(stamp.as_bytes());
    }
    for at in [847, 864] {
        v[at..at + 16].copy_from_slice(b"0000000000000000");
    }
    v[881] = 1;
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn files() -> Vec<(String, Vec<u8>)> {
        vec![
            (
                "openstack/latest/meta_data.json".into(),
                br#"{"uuid": "u"}"#.to_vec(),
            ),
            (
                "openstack/latest/user_data".into(),
                b"#!/bin/sh\necho hi\n".to_vec(),
            ),
            ("openstack/2012-08-10/meta_data.json".into(), b"{}".to_vec()),
            (
                "openstack/latest/network_data.json".into(),
                vec![b'x'; 5000],
            ),
        ]
    }

    fn now() -> jiff::Timestamp {
        "2026-12-07T20:00:00Z".parse().unwrap()
    }

    #[test]
    fn names_are_level_two_d_characters_and_unique() {
        let mut taken = Default::default();
        assert_eq!(
            unique_iso_name("meta_data.json", false, &mut taken),
            b"META_DATA.JSON;1"
        );
        assert_eq!(
            unique_iso_name("user_data", false, &mut taken),
            b"USER_DATA.;1"
        );
        assert_eq!(
            unique_iso_name("2012-08-10", true, &mut taken),
            b"2012_08_10"
        );
        assert_eq!(
            unique_iso_name("2012_08_10", true, &mut taken),
            b"2012_08_10_1"
        );
        let long = unique_iso_name(&"a".repeat(100), false, &mut taken);
        assert!(long.len() <= 32, "{}", String::from_utf8_lossy(&long));
    }

    #[test]
    fn bad_paths_are_refused() {
        for bad in ["", "a/../b", "x/./y", &"n".repeat(MAX_NAME + 1)] {
            let r = build("config-2", &[(bad.to_string(), vec![])], now());
            assert!(r.is_err(), "{bad:?} was accepted");
        }
        let twice = vec![("a".to_string(), vec![]), ("a".to_string(), vec![])];
        assert!(build("v", &twice, now()).is_err());
        let under_file = vec![("a".to_string(), vec![]), ("a/b".to_string(), vec![])];
        assert!(build("v", &under_file, now())
            .unwrap_err()
            .contains("is a file"));
        assert!(build(&"v".repeat(33), &[], now()).is_err());
    }

    #[test]
    fn the_descriptors_are_where_readers_look() {
        let iso = build("config-2", &files(), now()).unwrap();
        assert_eq!(iso.len() % SECTOR, 0);
        let pvd = &iso[16 * SECTOR..17 * SECTOR];
        assert_eq!(&pvd[..7], b"\x01CD001\x01");
        assert_eq!(&pvd[40..48], b"config-2");
        let total = u32::from_le_bytes(pvd[80..84].try_into().unwrap());
        assert_eq!(total as usize * SECTOR, iso.len());
        assert_eq!(&iso[17 * SECTOR..17 * SECTOR + 7], b"\xffCD001\x01");
        // The root's "." record opens with SP then ER.
        let root = u32::from_le_bytes(pvd[158..162].try_into().unwrap()) as usize * SECTOR;
        let dot = &iso[root..];
        assert_eq!(&dot[34..36], b"SP");
        assert_eq!(&dot[41..43], b"ER");
    }

    /// isoinfo (genisoimage) and blkid (util-linux), the readers nobody
    /// here wrote, see the names, the contents and the label.
    #[test]
    fn isoinfo_and_blkid_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cd.iso");
        std::fs::write(&path, build("config-2", &files(), now()).unwrap()).unwrap();
        let run = |cmd: &str, args: &[&str]| -> String {
            let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| {
                panic!("{cmd} is needed for this test ({e}): apt-get install genisoimage util-linux (scripts/install-deps.sh does)")
            });
            assert!(
                out.status.success(),
                "{cmd} {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let p = path.to_str().unwrap();
        let d = run("isoinfo", &["-d", "-i", p]);
        assert!(d.contains("Volume id: config-2"), "{d}");
        assert!(d.contains("Rock Ridge signatures version 1 found"), "{d}");
        let list = run("isoinfo", &["-R", "-f", "-i", p]);
        for f in [
            "/openstack/latest/meta_data.json",
            "/openstack/latest/user_data",
            "/openstack/latest/network_data.json",
            "/openstack/2012-08-10/meta_data.json",
        ] {
            assert!(list.lines().any(|l| l == f), "{f} not in:\n{list}");
        }
        for (name, data) in files() {
            let got = run("isoinfo", &["-R", "-i", p, "-x", &format!("/{name}")]);
            assert_eq!(got.as_bytes(), &data[..], "{name}");
        }
        let label = run("blkid", &["-o", "value", "-s", "LABEL", p]);
        assert_eq!(label.trim(), "config-2");
    }
}
