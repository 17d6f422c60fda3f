//! Node traits as Ironic validates them: a standard os-traits name (the
//! 377 names of os-traits 3.9.0, which Ironic 39 ships with, kept sorted in
//! `os_traits.txt`) or `CUSTOM_` followed by upper-case letters, digits and
//! underscores; at most [`MAX_PER_NODE`] per node.

/// Ironic's (and placement's) limit of traits per node.
pub const MAX_PER_NODE: usize = 50;

const STANDARD: &str = include_str!("os_traits.txt");

/// Whether `name` is a standard os-traits name.
pub fn is_standard(name: &str) -> bool {
    STANDARD.lines().any(|l| l == name)
}

/// Whether `name` is a trait Ironic accepts (case-sensitive).
pub fn is_valid(name: &str) -> bool {
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    match name.strip_prefix("CUSTOM_") {
        Some(rest) => {
            !rest.is_empty()
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        }
        None => is_standard(name),
    }
}

/// Sorts and de-duplicates a trait list (how Ironic keeps them).
pub fn normalize(mut traits: Vec<String>) -> Vec<String> {
    traits.sort();
    traits.dedup();
    traits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trait_names_as_ironic() {
        for (name, ok) in [
            ("CUSTOM_GPU", true),
            ("CUSTOM_RAID_1", true),
            ("CUSTOM_", false),
            ("custom_gpu", false),
            ("CUSTOM_gpu", false),
            ("HW_CPU_X86_AVX2", true),
            ("COMPUTE_ACCELERATORS", true),
            ("HW_CPU_X86_NOPE", false),
            ("", false),
        ] {
            assert_eq!(is_valid(name), ok, "{name}");
        }
        assert!(!is_valid(&format!("CUSTOM_{}", "A".repeat(250))));
        assert_eq!(STANDARD.lines().count(), 377);
        assert!(STANDARD
            .lines()
            .zip(STANDARD.lines().skip(1))
            .all(|(a, b)| a < b));
    }
}
