//! The size of the volume a directory is on (DescribeLogDirs v4+: `total_bytes`, `usable_bytes`).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Space on the volume that holds a directory, from `statvfs(3)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolumeSpace {
    /// The volume's size in bytes.
    pub total_bytes: u64,
    /// Bytes an unprivileged writer may still use (`f_bavail`, as Java's `getUsableSpace`).
    pub usable_bytes: u64,
}

/// The space of the volume `dir` is on.
#[allow(clippy::useless_conversion, reason = "statvfs's field types are u32 on some targets, u64 on others")]
pub fn volume_space(dir: &Path) -> io::Result<VolumeSpace> {
    let path = CString::new(dir.as_os_str().as_bytes()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string that outlives the call, and `stat` points to
    // writable memory of the size statvfs fills; it is read only after a successful return.
    let stat = unsafe {
        if libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) != 0 {
            return Err(io::Error::last_os_error());
        }
        stat.assume_init()
    };
    let fragment = u64::from(stat.f_frsize);
    Ok(VolumeSpace {
        total_bytes: u64::from(stat.f_blocks).saturating_mul(fragment),
        usable_bytes: u64::from(stat.f_bavail).saturating_mul(fragment),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_temp_volume_has_space_and_usable_is_within_total() {
        let space = volume_space(&std::env::temp_dir()).unwrap();
        assert!(space.total_bytes > 0);
        assert!(space.usable_bytes <= space.total_bytes);
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let err = volume_space(Path::new("/no/such/ringlog/dir")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
