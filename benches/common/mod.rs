//! Helpers shared by the `harness = false` benches that touch the disk.

use std::path::Path;

/// `name` from the environment, parsed, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Fails early (with a reason) when `dir` is on tmpfs, where O_DIRECT does not work and the
/// figures would mean nothing anyway.
pub fn check_real_disk(dir: &Path) {
    const TMPFS_MAGIC: libc::c_long = 0x0102_1994;
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).expect("path without NUL");
    // SAFETY: `c` is a valid C string and `st` a properly sized out-parameter.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    assert_eq!(rc, 0, "statfs {}", dir.display());
    assert!(st.f_type as libc::c_long != TMPFS_MAGIC, "{} is tmpfs: set TMPDIR to a directory on a real disk", dir.display());
}
