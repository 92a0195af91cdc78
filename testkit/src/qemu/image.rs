//! The guest's boot files: the Debian cloud kernel and an initramfs of busybox, iperf3 and
//! the virtio-net modules, built once per machine into a cache directory.

use super::cpio::Cpio;
use crate::process::{output_within, run_within, which};
use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// The metapackage whose dependency names the current cloud kernel package.
const KERNEL_META: &str = "linux-image-cloud-amd64";

/// Modules for a virtio-net NIC, in load order (busybox `insmod` resolves no dependencies).
/// Those built into the kernel are simply absent from its module tree and skipped.
const MODULES: &[&str] = &[
    "virtio_ring",
    "virtio",
    "virtio_pci_legacy_dev",
    "virtio_pci_modern_dev",
    "virtio_pci",
    "failover",
    "net_failover",
    "virtio_net",
    "af_packet",
];

/// Host programs copied into the initramfs (with the shared libraries they need), and where.
const PROGRAMS: &[(&str, &str)] = &[("busybox", "bin/busybox"), ("iperf3", "usr/bin/iperf3")];

/// Bounds the package tools: a stuck mirror must fail the test, not hang it.
const APT_TIMEOUT: Duration = Duration::from_secs(120);

/// The guest's `/init`: mounts the pseudo filesystems, loads the NIC modules, then keeps a
/// shell on the serial console forever.
///
/// The tty's echo is turned off before the shell starts: busybox ash then leaves its line
/// editor aside (which would echo, redraw and query the terminal with `ESC[6n`, noise for a
/// program reading the console) and reads plain lines. Its banner and prompts remain; they
/// fall outside the markers with which `Console` frames each command's output. A shell that
/// exits anyway is restarted by the loop.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /run /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
# Only emergencies on the console: kernel lines would land inside command outputs.
dmesg -n 1
for m in @MODULES@; do
    if [ -f /lib/modules/$m.ko ]; then
        insmod /lib/modules/$m.ko || echo "testkit-init: insmod $m failed"
    fi
done
ip link set lo up
hostname testkit
echo "testkit-init: ready"
while :; do
    setsid cttyhack sh -c 'stty -echo; exec sh'
done
"#;

/// Kernel and initramfs for [`Guest::boot`](super::Guest::boot).
#[derive(Clone, Debug)]
pub struct GuestImage {
    /// The kernel (`bzImage`).
    pub kernel: PathBuf,
    /// The initramfs: an uncompressed `newc` cpio (no decompression work for a TCG guest).
    pub initrd: PathBuf,
    /// The kernel's release, as `uname -r` prints it in the guest.
    pub kernel_release: String,
}

static IMAGE: OnceLock<Result<GuestImage, String>> = OnceLock::new();

impl GuestImage {
    /// Returns the machine's guest image, building it on first use.
    ///
    /// The cache is `$TESTKIT_GUEST_CACHE`, else `testkit-guest/` in the cargo target
    /// directory of the running test binary, keyed by the kernel package's name and version.
    /// Several test binaries may race: each builds into its own temporary directory and the
    /// first rename wins. The kernel package is fetched with `apt-get download` (never
    /// installed on the host).
    pub fn get() -> io::Result<&'static GuestImage> {
        IMAGE
            .get_or_init(|| build_cached().map_err(|e| format!("guest image: {e}")))
            .as_ref()
            .map_err(|e| io::Error::other(e.clone()))
    }
}

/// A hash of what goes into the image besides the kernel, so that a change of the init
/// script or module list builds a new image rather than reuse a stale one (FNV-1a: stable,
/// unlike std's hasher).
fn recipe_hash() -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    let parts = MODULES
        .iter()
        .chain(PROGRAMS.iter().flat_map(|(a, b)| [a, b]))
        .chain([&INIT]);
    for part in parts {
        for b in part.bytes().chain([0]) {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
    }
    h
}

fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("TESTKIT_GUEST_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir).join("testkit-guest");
    }
    // Test binaries live in <target>/<profile>/deps/.
    if let Ok(exe) = std::env::current_exe() {
        if let Some(target) = exe.ancestors().nth(3) {
            if exe.parent().and_then(Path::file_name) == Some("deps".as_ref()) {
                return target.join("testkit-guest");
            }
        }
    }
    std::env::temp_dir().join("testkit-guest")
}

fn build_cached() -> io::Result<GuestImage> {
    let root = cache_root();
    fs::create_dir_all(&root)?;
    let (key, package) = match kernel_package() {
        Ok((name, version)) => {
            let key = format!("{name}_{version}_{:08x}", recipe_hash()).replace([':', '/'], "_");
            (key, name)
        }
        Err(e) => {
            // Offline with a cache: use what is there rather than fail.
            match only_cached(&root) {
                Some(k) => (k, String::new()),
                None => return Err(e),
            }
        }
    };
    let dir = root.join(&key);
    if let Some(img) = load(&dir) {
        return Ok(img);
    }
    let tmp = root.join(format!(".{key}.tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp)?;
    let result = build(&package, &tmp).and_then(|()| {
        match fs::rename(tmp.join("out"), &dir) {
            Ok(()) => Ok(()),
            // Another process renamed its build first: theirs is as good.
            Err(_) if load(&dir).is_some() => Ok(()),
            Err(e) => Err(e),
        }
    });
    let _ = fs::remove_dir_all(&tmp);
    result?;
    load(&dir).ok_or_else(|| io::Error::other(format!("{} incomplete after build", dir.display())))
}

fn load(dir: &Path) -> Option<GuestImage> {
    let kernel_release = fs::read_to_string(dir.join("release")).ok()?;
    let img = GuestImage {
        kernel: dir.join("vmlinuz"),
        initrd: dir.join("initrd.cpio"),
        kernel_release: kernel_release.trim().to_string(),
    };
    (img.kernel.is_file() && img.initrd.is_file()).then_some(img)
}

fn only_cached(root: &Path) -> Option<String> {
    let mut keys: Vec<String> = fs::read_dir(root)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|k| !k.starts_with('.') && load(&root.join(k)).is_some())
        .collect();
    // Prefer an image of this recipe; any other still boots.
    let suffix = format!("_{:08x}", recipe_hash());
    keys.sort_by_key(|k| (k.ends_with(&suffix), k.clone()));
    keys.pop()
}

/// Resolves the cloud kernel package's name and candidate version, refreshing the package
/// lists once if they do not know it.
fn kernel_package() -> io::Result<(String, String)> {
    let lookup = || -> io::Result<(String, String)> {
        let deps = run_within(
            Command::new("apt-cache").args(["depends", KERNEL_META]),
            APT_TIMEOUT,
        )?;
        let name = deps
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Depends:"))
            .map(str::trim)
            .find(|d| d.starts_with("linux-image-"))
            .ok_or_else(|| io::Error::other(format!("no kernel in `apt-cache depends`: {deps}")))?
            .to_string();
        let show = run_within(
            Command::new("apt-cache").args(["show", "--no-all-versions", &name]),
            APT_TIMEOUT,
        )?;
        let version = show
            .lines()
            .find_map(|l| l.strip_prefix("Version:"))
            .map(|v| v.trim().to_string())
            .ok_or_else(|| io::Error::other(format!("no version for {name}")))?;
        Ok((name, version))
    };
    if let Ok(found) = lookup() {
        return Ok(found);
    }
    // Another apt-get may hold the lists lock: retry a few times.
    let mut last = None;
    for _ in 0..3 {
        match run_within(Command::new("apt-get").args(["update", "-qq"]), APT_TIMEOUT) {
            Ok(_) => return lookup(),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_secs(5));
    }
    Err(last.expect("at least one attempt"))
}

fn build(package: &str, tmp: &Path) -> io::Result<()> {
    run_within(
        Command::new("apt-get")
            .args(["download", "-qq", package])
            .current_dir(tmp),
        APT_TIMEOUT,
    )?;
    let deb = fs::read_dir(tmp)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension() == Some("deb".as_ref()))
        .ok_or_else(|| io::Error::other("apt-get download left no .deb"))?;
    let x = tmp.join("x");
    run_within(
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&x),
        APT_TIMEOUT,
    )?;
    let vmlinuz = fs::read_dir(x.join("boot"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .starts_with("vmlinuz-")
        })
        .ok_or_else(|| io::Error::other("no /boot/vmlinuz-* in the kernel package"))?;
    let release = vmlinuz
        .file_name()
        .expect("found by name")
        .to_string_lossy()["vmlinuz-".len()..]
        .to_string();

    let mut cpio = Cpio::default();
    for d in [
        "proc",
        "sys",
        "dev",
        "tmp",
        "run",
        "lib/modules",
        "sbin",
        "usr/sbin",
    ] {
        cpio.dir(d);
    }
    // The kernel opens /dev/console for init's stdio before init mounts devtmpfs.
    cpio.char_dev("dev/console", 0o600, 5, 1);
    let mut loaded = Vec::new();
    let modules = index_modules(&x.join("lib/modules").join(&release))?;
    for m in MODULES {
        if let Some(path) = modules.get(*m) {
            cpio.file(&format!("lib/modules/{m}.ko"), 0o644, &read_module(path)?);
            loaded.push(*m);
        }
    }
    for (prog, dest) in PROGRAMS {
        let path = which(prog)
            .ok_or_else(|| io::Error::other(format!("{prog} is not installed on the host")))?;
        cpio.file(dest, 0o755, &fs::read(&path)?);
        for lib in shared_libraries(&path)? {
            let rel = lib.to_string_lossy().trim_start_matches('/').to_string();
            // fs::read follows the symlinks ldd reports (e.g. libc.so.6 -> libc-2.36.so).
            cpio.file(&rel, 0o755, &fs::read(&lib)?);
        }
    }
    cpio.file(
        "init",
        0o755,
        INIT.replace("@MODULES@", &loaded.join(" ")).as_bytes(),
    );

    let out = tmp.join("out");
    fs::create_dir_all(&out)?;
    fs::copy(&vmlinuz, out.join("vmlinuz"))?;
    fs::write(out.join("initrd.cpio"), cpio.finish())?;
    fs::write(out.join("release"), &release)?;
    Ok(())
}

/// Maps module names (`virtio_net`) to their files, compressed or not.
fn index_modules(dir: &Path) -> io::Result<HashMap<String, PathBuf>> {
    let mut found = HashMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let file = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if let Some((name, _)) = file.split_once(".ko") {
                found.insert(name.to_string(), p);
            }
        }
    }
    Ok(found)
}

/// Busybox `insmod` loads plain ELF only: decompress `.ko.xz`/`.ko.zst`/`.ko.gz`.
fn read_module(path: &Path) -> io::Result<Vec<u8>> {
    let tool = match path.extension().and_then(|e| e.to_str()) {
        Some("xz") => "xz",
        Some("zst") => "zstd",
        Some("gz") => "gzip",
        _ => return fs::read(path),
    };
    let out = output_within(Command::new(tool).arg("-dc").arg(path), APT_TIMEOUT)?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{tool} -dc {} failed",
            path.display()
        )));
    }
    Ok(out.stdout)
}

/// The shared libraries and dynamic loader `ldd` lists for `exe`; none for a static one.
fn shared_libraries(exe: &Path) -> io::Result<Vec<PathBuf>> {
    let out = output_within(Command::new("ldd").arg(exe), Duration::from_secs(30))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // ldd exits 1 with "not a dynamic executable" for a static binary.
        return Ok(Vec::new());
    }
    Ok(text
        .lines()
        .filter_map(|l| {
            // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
            // "/lib64/ld-linux-x86-64.so.2 (0x...)"; the vdso has no file.
            let l = l.trim();
            let path = l.split_once("=> ").map_or(l, |(_, p)| p);
            let path = path.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}
