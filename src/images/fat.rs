//! A small FAT16 writer for EFI system partition images: the UEFI boot
//! entry of a bootable ISO points at one holding `EFI/BOOT/BOOTX64.EFI`.
//!
//! Layout: one boot sector, two FATs, a 512-entry root directory, then the
//! data clusters (512 bytes each, more when the files need it), directories
//! before files. Names are 8.3 (upper case, no long names): what firmware
//! looks up on an ESP is `EFI/BOOT/BOOTX64.EFI`. The cluster count is kept
//! within FAT16's range (4085–65524), which is what makes readers take it
//! for FAT16.

use std::collections::BTreeMap;

const SECTOR: usize = 512;
const ROOT_ENTRIES: usize = 512;
const MIN_CLUSTERS: usize = 4085 + 11;
const MAX_CLUSTERS: usize = 65524;

enum Node {
    Dir(BTreeMap<String, Node>),
    File(Vec<u8>),
}

/// An 8.3 name as its 11 directory bytes; None when `name` is not one.
fn short_name(name: &str) -> Option<[u8; 11]> {
    let (stem, ext) = match name.split_once('.') {
        Some((s, e)) => (s, e),
        None => (name, ""),
    };
    let ok = |s: &str, max: usize| {
        s.len() <= max
            && s.chars().all(|c| {
                c.is_ascii_uppercase() || c.is_ascii_digit() || "_-~!#$%&'()@^`{}".contains(c)
            })
    };
    if stem.is_empty() || !ok(stem, 8) || !ok(ext, 3) {
        return None;
    }
    let mut out = [b' '; 11];
    out[..stem.len()].copy_from_slice(stem.as_bytes());
    out[8..8 + ext.len()].copy_from_slice(ext.as_bytes());
    Some(out)
}

fn insert(root: &mut BTreeMap<String, Node>, path: &str, data: Vec<u8>) -> Result<(), String> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let Some((last, dirs)) = parts.split_last() else {
        return Err(format!("{path:?} is not a file path"));
    };
    let mut here = root;
    for part in parts.iter() {
        if short_name(part).is_none() {
            return Err(format!(
                "{path:?}: {part:?} is not an upper-case 8.3 name (the EFI partition has no long names)"
            ));
        }
    }
    for d in dirs {
        match here
            .entry(d.to_string())
            .or_insert_with(|| Node::Dir(BTreeMap::new()))
        {
            Node::Dir(sub) => here = sub,
            Node::File(_) => return Err(format!("{path:?}: {d:?} is a file")),
        }
    }
    if here.insert(last.to_string(), Node::File(data)).is_some() {
        return Err(format!("{path:?} is given twice"));
    }
    Ok(())
}

fn entry(name: &[u8; 11], dir: bool, cluster: u16, size: u32) -> [u8; 32] {
    let mut e = [0u8; 32];
    e[..11].copy_from_slice(name);
    e[11] = if dir { 0x10 } else { 0x20 };
    // 2026-01-01 00:00: a fixed date, so the image is reproducible.
    let date: u16 = ((2026 - 1980) << 9) | (1 << 5) | 1;
    for at in [14, 22] {
        e[at..at + 2].copy_from_slice(&0u16.to_le_bytes());
        e[at + 2..at + 4].copy_from_slice(&date.to_le_bytes());
    }
    e[18..20].copy_from_slice(&date.to_le_bytes());
    e[26..28].copy_from_slice(&cluster.to_le_bytes());
    e[28..32].copy_from_slice(&size.to_le_bytes());
    e
}

/// Builds a FAT16 image holding `files` (slash-separated 8.3 paths,
/// directories made as needed) labelled `label` (at most 11 characters).
pub fn build(label: &str, files: Vec<(String, Vec<u8>)>) -> Result<Vec<u8>, String> {
    if label.is_empty() || label.len() > 11 || !label.is_ascii() {
        return Err(format!(
            "the FAT label {label:?} must be 1 to 11 ASCII characters"
        ));
    }
    let mut root = BTreeMap::new();
    for (path, data) in files {
        insert(&mut root, &path, data)?;
    }
    // Cluster size: the smallest that keeps the count within FAT16.
    let payload: usize = count_bytes(&root);
    let mut spc = 1usize;
    while payload / (spc * SECTOR) + 64 > MAX_CLUSTERS - 16 {
        spc *= 2;
        if spc > 64 {
            return Err(format!("{payload} bytes are more than a FAT16 image holds"));
        }
    }
    let cs = spc * SECTOR;

    // Places: directories (breadth first), then files, one chain each.
    struct Placed {
        /// (first cluster, clusters, bytes)
        dirs: Vec<(u16, Vec<u8>)>,
        files: Vec<(u16, Vec<u8>)>,
    }
    let mut next_cluster = 2usize;
    let mut take = |bytes: usize| -> Result<u16, String> {
        let first = next_cluster;
        next_cluster += bytes.div_ceil(cs).max(1);
        if next_cluster > MAX_CLUSTERS {
            return Err("the files do not fit a FAT16 image".into());
        }
        Ok(first as u16)
    };
    // Directory contents are made after every child has its cluster, so the
    // clusters are assigned in two passes: directories first.
    let mut order: Vec<(Vec<String>, &BTreeMap<String, Node>)> = vec![(vec![], &root)];
    let mut i = 0;
    while i < order.len() {
        let (path, dir) = (order[i].0.clone(), order[i].1);
        for (name, n) in dir {
            if let Node::Dir(sub) = n {
                let mut p = path.clone();
                p.push(name.clone());
                order.push((p, sub));
            }
        }
        i += 1;
    }
    let mut dir_cluster: BTreeMap<Vec<String>, u16> = BTreeMap::new();
    for (path, dir) in order.iter().skip(1) {
        // ".", "..", the children.
        let bytes = (2 + dir.len()) * 32;
        dir_cluster.insert(path.clone(), take(bytes)?);
    }
    let mut file_cluster: BTreeMap<Vec<String>, u16> = BTreeMap::new();
    for (path, dir) in &order {
        for (name, n) in *dir {
            if let Node::File(data) = n {
                let mut p = path.clone();
                p.push(name.clone());
                // An empty file has no cluster (its entry says 0).
                let first = if data.is_empty() {
                    0
                } else {
                    take(data.len())?
                };
                file_cluster.insert(p, first);
            }
        }
    }
    let used = next_cluster - 2;
    let clusters = used.max(MIN_CLUSTERS);
    let fat_sectors = (2 * (clusters + 2)).div_ceil(SECTOR);
    let root_sectors = ROOT_ENTRIES * 32 / SECTOR;
    let data_start = 1 + 2 * fat_sectors + root_sectors;
    let total = data_start + clusters * spc;
    let mut img = vec![0u8; total * SECTOR];

    // Boot sector (BPB for FAT16).
    let b = &mut img[..SECTOR];
    b[..3].copy_from_slice(&[0xEB, 0x3C, 0x90]);
    b[3..11].copy_from_slice(b"RACKBOOT");
    b[11..13].copy_from_slice(&(SECTOR as u16).to_le_bytes());
    b[13] = spc as u8;
    b[14..16].copy_from_slice(&1u16.to_le_bytes());
    b[16] = 2;
    b[17..19].copy_from_slice(&(ROOT_ENTRIES as u16).to_le_bytes());
    if total < 65536 {
        b[19..21].copy_from_slice(&(total as u16).to_le_bytes());
    } else {
        b[32..36].copy_from_slice(&(total as u32).to_le_bytes());
    }
    b[21] = 0xF8;
    b[22..24].copy_from_slice(&(fat_sectors as u16).to_le_bytes());
    b[24..26].copy_from_slice(&32u16.to_le_bytes());
    b[26..28].copy_from_slice(&64u16.to_le_bytes());
    b[36] = 0x80;
    b[38] = 0x29;
    b[39..43].copy_from_slice(&0x5241_434Bu32.to_le_bytes());
    let mut vol = [b' '; 11];
    vol[..label.len()].copy_from_slice(label.to_ascii_uppercase().as_bytes());
    b[43..54].copy_from_slice(&vol);
    b[54..62].copy_from_slice(b"FAT16   ");
    b[510] = 0x55;
    b[511] = 0xAA;

    // The FAT: media and end-of-chain marks, then every chain.
    let mut fat = vec![0u16; clusters + 2];
    fat[0] = 0xFFF8;
    fat[1] = 0xFFFF;
    let mut chain = |first: u16, bytes: usize| {
        let n = bytes.div_ceil(cs).max(1);
        for k in 0..n {
            let c = first as usize + k;
            fat[c] = if k + 1 == n { 0xFFFF } else { (c + 1) as u16 };
        }
    };
    let mut placed = Placed {
        dirs: Vec::new(),
        files: Vec::new(),
    };
    for (path, dir) in &order {
        let mut records: Vec<u8> = Vec::new();
        let me = dir_cluster.get(path).copied();
        if let Some(me) = me {
            let parent = dir_cluster
                .get(&path[..path.len() - 1])
                .copied()
                .unwrap_or(0);
            records.extend(entry(b".          ", true, me, 0));
            records.extend(entry(b"..         ", true, parent, 0));
        } else {
            let mut v = entry(&vol, false, 0, 0);
            v[11] = 0x08; // volume label
            records.extend(v);
        }
        for (name, n) in *dir {
            let mut p = path.clone();
            p.push(name.clone());
            let short = short_name(name).expect("checked on insert");
            match n {
                Node::Dir(_) => records.extend(entry(&short, true, dir_cluster[&p], 0)),
                Node::File(data) => {
                    let c = file_cluster[&p];
                    if c != 0 {
                        chain(c, data.len());
                        placed.files.push((c, data.clone()));
                    }
                    records.extend(entry(&short, false, c, data.len() as u32));
                }
            }
        }
        match me {
            Some(c) => {
                chain(c, records.len());
                placed.dirs.push((c, records));
            }
            None => {
                if records.len() > ROOT_ENTRIES * 32 {
                    return Err("too many entries in the root directory".into());
                }
                let at = (1 + 2 * fat_sectors) * SECTOR;
                img[at..at + records.len()].copy_from_slice(&records);
            }
        }
    }
    let fat_bytes: Vec<u8> = fat.iter().flat_map(|v| v.to_le_bytes()).collect();
    for copy in 0..2 {
        let at = (1 + copy * fat_sectors) * SECTOR;
        img[at..at + fat_bytes.len()].copy_from_slice(&fat_bytes);
    }
    for (c, data) in placed.dirs.iter().chain(placed.files.iter()) {
        if data.is_empty() {
            continue;
        }
        let at = (data_start + (*c as usize - 2) * spc) * SECTOR;
        img[at..at + data.len()].copy_from_slice(data);
    }
    Ok(img)
}

fn count_bytes(dir: &BTreeMap<String, Node>) -> usize {
    dir.values()
        .map(|n| match n {
            Node::Dir(sub) => 4096 + count_bytes(sub),
            Node::File(d) => d.len() + 4096,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn short_names() {
        assert_eq!(short_name("BOOTX64.EFI"), Some(*b"BOOTX64 EFI"));
        assert_eq!(short_name("EFI"), Some(*b"EFI        "));
        for bad in [
            "bootx64.efi",
            "TOOLONGNAME.EFI",
            "A.EFIX",
            "",
            ".EFI",
            "A.B.C",
            "SP ACE",
        ] {
            assert_eq!(short_name(bad), None, "{bad}");
        }
        assert!(build("ESP", vec![("EFI/boot/x.efi".into(), vec![1])]).is_err());
        assert!(build("ESP", vec![("A".into(), vec![]), ("A/B".into(), vec![])]).is_err());
        assert!(build("", vec![]).is_err());
    }

    /// fsck.vfat (dosfstools) finds nothing wrong and mtools (mtype, mdir)
    /// read back every file: readers nobody here wrote.
    #[test]
    fn dosfstools_and_mtools_read_it() {
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let files = vec![
            ("EFI/BOOT/BOOTX64.EFI".to_string(), big.clone()),
            ("EFI/BOOT/GRUB.CFG".to_string(), b"set timeout=0\n".to_vec()),
            ("README.TXT".to_string(), b"rackboot\n".to_vec()),
            ("EMPTY".to_string(), Vec::new()),
        ];
        let img = build("ESP", files.clone()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("esp.img");
        std::fs::write(&path, &img).unwrap();
        let run = |cmd: &str, args: &[&str]| -> std::process::Output {
            Command::new(cmd)
                .args(args)
                .env("MTOOLS_SKIP_CHECK", "1")
                .output()
                .unwrap_or_else(|e| panic!("{cmd} is needed for this test ({e}): apt-get install dosfstools mtools (scripts/install-deps.sh does)"))
        };
        let p = path.to_str().unwrap();
        let fsck = run("fsck.vfat", &["-n", "-v", p]);
        let said = String::from_utf8_lossy(&fsck.stdout).to_string();
        assert!(
            fsck.status.success(),
            "{said}{}",
            String::from_utf8_lossy(&fsck.stderr)
        );
        assert!(said.contains("2 FATs, 16 bit entries"), "{said}");
        for (name, data) in &files {
            let out = run("mtype", &["-i", p, &format!("::/{name}")]);
            assert!(
                out.status.success(),
                "{name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(&out.stdout, data, "{name}");
        }
        let label = run("mlabel", &["-i", p, "-s", "::"]);
        assert!(
            String::from_utf8_lossy(&label.stdout).contains("ESP"),
            "{label:?}"
        );
    }
}
