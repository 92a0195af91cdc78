//! A writer for the `newc` cpio format, the one the kernel unpacks as an initramfs.
//!
//! Written here rather than run through the `cpio` tool so the image needs one package less
//! and so the archive can hold a `/dev/console` node without the builder being root.

use std::collections::BTreeSet;

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFCHR: u32 = 0o020_000;

/// An archive being built in memory; parent directories are added on demand.
#[derive(Default)]
pub(crate) struct Cpio {
    out: Vec<u8>,
    next_ino: u32,
    dirs: BTreeSet<String>,
}

impl Cpio {
    /// Adds the directory `path` (relative, `/`-separated) and its missing parents.
    pub(crate) fn dir(&mut self, path: &str) {
        let mut prefix = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            if self.dirs.insert(prefix.clone()) {
                let name = prefix.clone();
                self.entry(&name, S_IFDIR | 0o755, 2, (0, 0), &[]);
            }
        }
    }

    /// Adds a regular file with permission bits `perm`.
    pub(crate) fn file(&mut self, path: &str, perm: u32, data: &[u8]) {
        self.parent(path);
        self.entry(path, S_IFREG | perm, 1, (0, 0), data);
    }

    /// Adds a character device node.
    pub(crate) fn char_dev(&mut self, path: &str, perm: u32, major: u32, minor: u32) {
        self.parent(path);
        self.entry(path, S_IFCHR | perm, 1, (major, minor), &[]);
    }

    /// Ends the archive with its trailer and returns its bytes.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, 1, (0, 0), &[]);
        self.out
    }

    fn parent(&mut self, path: &str) {
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
    }

    fn entry(&mut self, name: &str, mode: u32, nlink: u32, rdev: (u32, u32), data: &[u8]) {
        self.next_ino += 1;
        let fields = [
            self.next_ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime: fixed, so that two builds of the same inputs are identical
            data.len() as u32,
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1, // the name's length counts its NUL
            0,                     // check: unused by newc
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    /// Header+name and data are each padded to 4 bytes.
    fn pad(&mut self) {
        while self.out.len() & 3 != 0 {
            self.out.push(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_newc() {
        let mut c = Cpio::default();
        c.file("a/b", 0o644, b"xyz");
        let out = c.finish();
        // "a" (dir), "a/b", trailer; every header starts at a multiple of 4.
        let text = String::from_utf8_lossy(&out);
        assert_eq!(text.matches("070701").count(), 3);
        assert!(text.starts_with("070701"));
        assert_eq!(out.len() % 4, 0);
        let b = text.find("a/b\0").unwrap();
        assert_eq!((b - 110) % 4, 0);
        assert!(text.contains("xyz"));
        assert!(text.contains("TRAILER!!!\0"));
    }
}
