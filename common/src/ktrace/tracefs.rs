//! tracefs: where the kernel's tracepoints are named (`events/<system>/<name>/id`) and
//! described (`…/format`: each field's name, offset, size and sign, which differ
//! between kernels — never hard-coded). tracefs is mounted at /sys/kernel/tracing if it
//! is not mounted anywhere, and unmounted again when the last [`Tracefs`] of this
//! process that uses that mount drops: a run leaves no mount behind. Threads of one
//! process share the mount (a second mount on the same point fails with EBUSY); a
//! mount another process made meanwhile is used, not ours to unmount.
//!
//! Owns the mount and reading tracefs; opening perf events is acceptbench's `kernel::perf`'s.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

/// Where tracefs is mounted, and whether we mounted it (then dropping unmounts it).
#[derive(Debug)]
pub struct Tracefs {
    /// The mount point.
    pub root: PathBuf,
    /// Our mount, shared by every `Tracefs` of this process (None: not ours).
    mount: Option<Arc<OurMount>>,
}

/// A tracefs mount this process made: unmounted when its last user drops it.
#[derive(Debug)]
struct OurMount(PathBuf);

impl Drop for OurMount {
    fn drop(&mut self) {
        // Under the lock, so that no thread takes the mount for a live one while it is
        // being unmounted: `open` waits while a dead mount is still recorded.
        let mut ours = OURS.lock().unwrap_or_else(|e| e.into_inner());
        unmount(&self.0);
        *ours = None;
    }
}

/// This process's mount, while any `Tracefs` holds it (a dead `Weak` while its last
/// user unmounts it; None once unmounted, or never mounted).
static OURS: Mutex<Option<Weak<OurMount>>> = Mutex::new(None);

/// Where tracefs is mounted, per /proc/mounts.
fn mounted() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[2] == "tracefs")
        .map(|f| PathBuf::from(f[1]))
}

/// Why tracepoints cannot be used here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TracefsError {
    /// Not mounted, and mounting it failed (not root, a container without the
    /// capability, a kernel without CONFIG_TRACING).
    #[error("tracefs is not mounted and mounting it at /sys/kernel/tracing failed ({0}): run as root (CAP_SYS_ADMIN) on a kernel with tracing, or mount it yourself")]
    Mount(String),
    /// The kernel has no such tracepoint.
    #[error("this kernel has no tracepoint {0} (no {1})")]
    NoEvent(String, String),
    /// A format file that does not parse.
    #[error("{0}: unreadable tracepoint format: {1}")]
    Format(String, String),
}

/// One field of a tracepoint's record, from its format file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Its name (`sport`, `oldstate`, `saddr_v6`, …).
    pub name: String,
    /// Byte offset in the raw record.
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
    /// Signed or not.
    pub signed: bool,
}

const DEFAULT_ROOT: &str = "/sys/kernel/tracing";

impl Tracefs {
    /// Finds tracefs (/proc/mounts), mounting it at /sys/kernel/tracing if absent.
    pub fn open() -> Result<Tracefs, TracefsError> {
        let mut ours = OURS.lock().unwrap_or_else(|e| e.into_inner());
        // Our last user may be unmounting it right now: wait for that (bounded), never
        // take a mount that is about to go for one that stays.
        for _ in 0..1000 {
            match ours.as_ref().map(Weak::upgrade) {
                Some(Some(m)) => {
                    return Ok(Tracefs {
                        root: m.0.clone(),
                        mount: Some(m),
                    })
                }
                Some(None) => {
                    drop(ours);
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    ours = OURS.lock().unwrap_or_else(|e| e.into_inner());
                }
                None => break,
            }
        }
        if let Some(root) = mounted() {
            return Ok(Tracefs { root, mount: None });
        }
        let target = std::ffi::CString::new(DEFAULT_ROOT).expect("no NUL");
        let fstype = std::ffi::CString::new("tracefs").expect("no NUL");
        // SAFETY: plain C strings that live across the call; no data argument.
        let rc = unsafe {
            libc::mount(
                fstype.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            // Another process mounted it in the meantime: use that one.
            return match mounted() {
                Some(root) => Ok(Tracefs { root, mount: None }),
                None => Err(TracefsError::Mount(e.to_string())),
            };
        }
        let m = Arc::new(OurMount(PathBuf::from(DEFAULT_ROOT)));
        *ours = Some(Arc::downgrade(&m));
        Ok(Tracefs {
            root: m.0.clone(),
            mount: Some(m),
        })
    }

    fn event_dir(&self, event: &str) -> Result<PathBuf, TracefsError> {
        let (system, name) = event
            .split_once(':')
            .ok_or_else(|| TracefsError::NoEvent(event.into(), "system:name".into()))?;
        let dir = self.root.join("events").join(system).join(name);
        if dir.is_dir() {
            Ok(dir)
        } else {
            Err(TracefsError::NoEvent(
                event.into(),
                dir.display().to_string(),
            ))
        }
    }

    /// The perf id of tracepoint `system:name`.
    pub fn id(&self, event: &str) -> Result<u64, TracefsError> {
        let path = self.event_dir(event)?.join("id");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| TracefsError::NoEvent(event.into(), format!("{}: {e}", path.display())))?;
        text.trim()
            .parse()
            .map_err(|e| TracefsError::Format(path.display().to_string(), format!("{e}")))
    }

    /// The fields of tracepoint `system:name`, by its format file.
    pub fn fields(&self, event: &str) -> Result<Vec<Field>, TracefsError> {
        let path = self.event_dir(event)?.join("format");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| TracefsError::NoEvent(event.into(), format!("{}: {e}", path.display())))?;
        parse_format(&text).map_err(|e| TracefsError::Format(path.display().to_string(), e))
    }

    /// The value a tracepoint's `print fmt` gives symbol `name` in a
    /// `__print_symbolic` table (e.g. `TCP_LISTEN_OVERFLOW` of `skb:kfree_skb`'s
    /// drop reasons: enum values that move between kernels, so looked up, never
    /// assumed). `Ok(None)`: the event exists but has no such symbol.
    pub fn symbol(&self, event: &str, name: &str) -> Result<Option<u64>, TracefsError> {
        let path = self.event_dir(event)?.join("format");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| TracefsError::NoEvent(event.into(), format!("{}: {e}", path.display())))?;
        Ok(symbolic_value(&text, name))
    }

    /// Whether this process mounted it (it goes when the last user drops it).
    pub fn mounted_by_us(&self) -> bool {
        self.mount.is_some()
    }
}

fn unmount(root: &Path) {
    if let Ok(target) = std::ffi::CString::new(root.as_os_str().as_encoded_bytes()) {
        // SAFETY: a C string that lives across the call. A busy mount (an open perf
        // event still holds it) is detached and goes once unused.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Parses a tracepoint format file's `field:` lines:
/// `field:unsigned short sport; offset:12; size:2; signed:0;` (tab-separated).
pub fn parse_format(text: &str) -> Result<Vec<Field>, String> {
    let mut fields = Vec::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("field:"))
    {
        let mut name = None;
        let (mut offset, mut size, mut signed) = (None, None, false);
        for part in line.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once(':')
                .ok_or_else(|| format!("no key in {part:?}"))?;
            match key.trim() {
                // The declaration's last word is the name, less any array suffix.
                "field" => {
                    name = value
                        .split_whitespace()
                        .last()
                        .map(|w| w.split('[').next().unwrap_or(w).to_string())
                }
                "offset" => offset = value.trim().parse().ok(),
                "size" => size = value.trim().parse().ok(),
                "signed" => signed = value.trim() == "1",
                _ => {}
            }
        }
        match (name, offset, size) {
            (Some(name), Some(offset), Some(size)) => fields.push(Field {
                name,
                offset,
                size,
                signed,
            }),
            _ => return Err(format!("incomplete field line {line:?}")),
        }
    }
    if fields.is_empty() {
        return Err("no field lines".into());
    }
    Ok(fields)
}

/// The number paired with `"name"` in a format's `__print_symbolic(…, { 40, "NAME" }, …)`.
pub fn symbolic_value(text: &str, name: &str) -> Option<u64> {
    let quoted = format!("\"{name}\"");
    text.split('{').find_map(|entry| {
        let (value, rest) = entry.split_once(',')?;
        let rest = rest.trim_start();
        let symbol = rest.split('}').next()?.trim();
        (symbol == quoted).then(|| value.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_format_file_gives_each_fields_place() {
        let text = "name: inet_sock_set_state\nID: 1415\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;\n\tfield:int oldstate;\toffset:16;\tsize:4;\tsigned:1;\n\tfield:__u8 saddr_v6[16];\toffset:40;\tsize:16;\tsigned:0;\n\nprint fmt: \"family=%s\"\n";
        let f = parse_format(text).unwrap();
        assert_eq!(f.len(), 4);
        assert_eq!(
            f[2],
            Field {
                name: "oldstate".into(),
                offset: 16,
                size: 4,
                signed: true
            }
        );
        assert_eq!(f[3].name, "saddr_v6");
        assert_eq!((f[3].offset, f[3].size), (40, 16));
        assert!(parse_format("name: x\n").is_err());
    }

    #[test]
    fn a_symbol_is_found_by_name_in_print_fmt() {
        let text = "print fmt: \"reason: %s\", __print_symbolic(REC->reason, { 2, \"NOT_SPECIFIED\" }, { 40, \"TCP_LISTEN_OVERFLOW\" }, { 41, \"TCP_OLD_SEQUENCE\" })";
        assert_eq!(symbolic_value(text, "TCP_LISTEN_OVERFLOW"), Some(40));
        assert_eq!(symbolic_value(text, "NOT_SPECIFIED"), Some(2));
        assert_eq!(symbolic_value(text, "TCP_LISTEN"), None);
    }

    /// Threads that open and drop tracefs at once never read from a mount that is
    /// being unmounted (the drop of the last user unmounts what this process mounted).
    /// A stress test: the window is small, and it did not fail here without the lock.
    #[test]
    fn threads_opening_and_dropping_tracefs_always_find_it() {
        if let Err(e) = Tracefs::open() {
            crate::testskip::skip(crate::testskip::Lack::Root, &e.to_string());
            return;
        }
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..2000 {
                        let t = Tracefs::open().expect("tracefs opens");
                        t.id("sock:inet_sock_set_state")
                            .expect("a live mount has the tracepoint");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("no thread failed");
        }
    }
}
