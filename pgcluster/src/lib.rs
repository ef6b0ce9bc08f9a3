//! A private PostgreSQL cluster run from the machine's PostgreSQL binaries.
//!
//! `chronicle serve` uses it when no `DATABASE_URL` is configured, and the test suites use it to
//! get a throw-away server. The cluster listens only on a Unix socket in a private directory
//! (no TCP port, so it never clashes with another server) and trusts local connections as the
//! `postgres` superuser. PostgreSQL refuses to run as root, so when this process is root the
//! server runs as the unprivileged `postgres` user (or `CHRONICLE_PG_USER`).
//!
//! A small watchdog process holds the read end of a pipe whose write end lives in this process:
//! when this process exits — cleanly, by panic or by `kill -9` — the pipe closes and the
//! watchdog stops the server (and, for temporary clusters, removes its files).

mod testing;

use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

pub use testing::TestDatabase;

/// Why a cluster could not be provisioned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl) were not found: install PostgreSQL \
         (Debian/Ubuntu: `apt-get install postgresql`), set CHRONICLE_PG_BIN to their directory, \
         or set DATABASE_URL to an existing database"
    )]
    BinariesNotFound,
    #[error(
        "running as root, but there is no unprivileged user `{0}` to run PostgreSQL as \
         (create one, or set CHRONICLE_PG_USER)"
    )]
    NoUnprivilegedUser(String),
    #[error("{action} failed: {detail}")]
    Command { action: String, detail: String },
    #[error("{action}: {source}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let action = action.into();
    move |source| Error::Io { action, source }
}

/// What to do with the cluster's files when it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Keep the data directory (the server's data survives restarts).
    Persistent,
    /// Remove the data directory when the owning process exits (tests).
    Temporary,
}

/// The unprivileged account the server runs as when we are root.
#[derive(Debug, Clone)]
struct RunAs {
    name: String,
    uid: u32,
    gid: u32,
}

/// A running PostgreSQL cluster owned by this process.
#[derive(Debug)]
pub struct Cluster {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    run_as: Option<RunAs>,
    /// Server settings (`-c name=value`) besides the defaults.
    settings: Vec<(String, String)>,
    // Dropping this closes the pipe, which makes the watchdog stop the server.
    watchdog: Option<(Child, ChildStdin)>,
}

const PORT: u16 = 5432;
const SUPERUSER: &str = "postgres";

impl Cluster {
    /// Starts (creating if needed) a cluster whose data lives in `data_dir`.
    pub fn start(data_dir: &Path, lifetime: Lifetime) -> Result<Cluster, Error> {
        Cluster::start_with(data_dir, lifetime, &[])
    }

    /// Like [`Cluster::start`], for a cluster that has the machine to itself (`chronicle
    /// serve`'s, the benchmarks'): its memory settings grow with the machine (see
    /// [`machine_sized_buffers`]) instead of the defaults, which suit the test suites' many
    /// small clusters.
    pub fn start_sized_to_machine(data_dir: &Path, lifetime: Lifetime) -> Result<Cluster, Error> {
        let shared_buffers = machine_sized_buffers().map(|mib| format!("{mib}MB"));
        let mut settings = vec![("max_wal_size", "8GB")];
        if let Some(shared_buffers) = &shared_buffers {
            settings.push(("shared_buffers", shared_buffers));
        }
        Cluster::start_with(data_dir, lifetime, &settings)
    }

    /// Like [`Cluster::start`], with server `settings` (name, value) on top of the defaults —
    /// e.g. `max_prepared_transactions` for tests of two-phase commit.
    pub fn start_with(
        data_dir: &Path,
        lifetime: Lifetime,
        settings: &[(&str, &str)],
    ) -> Result<Cluster, Error> {
        let bin_dir = find_binaries()?;
        let run_as = unprivileged_user()?;
        fs::create_dir_all(data_dir).map_err(io_err(format!("creating {}", data_dir.display())))?;
        let data_dir = data_dir
            .canonicalize()
            .map_err(io_err("resolving the data directory"))?;
        // Unix socket paths are limited to ~100 bytes, so the socket lives in a short private dir.
        let socket_dir = tempfile::Builder::new()
            .prefix("chronicle-pg-")
            .tempdir_in("/tmp")
            .map_err(io_err("creating the socket directory"))?
            .keep();
        for dir in [&data_dir, &socket_dir] {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(io_err(format!("securing {}", dir.display())))?;
            if let Some(user) = &run_as {
                std::os::unix::fs::chown(dir, Some(user.uid), Some(user.gid)).map_err(io_err(
                    format!("handing {} to the postgres user", dir.display()),
                ))?;
            }
        }
        let mut cluster = Cluster {
            bin_dir,
            data_dir,
            socket_dir,
            run_as,
            settings: settings
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            watchdog: None,
        };
        if !cluster.data_dir.join("PG_VERSION").exists() {
            cluster.initdb()?;
        }
        cluster.pg_ctl_start()?;
        cluster.watchdog = Some(cluster.spawn_watchdog(lifetime)?);
        Ok(cluster)
    }

    /// A connection URL for `database` on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@localhost:{PORT}/{database}?host={}",
            self.socket_dir.display()
        )
    }

    /// The directory holding the server's Unix socket (for `psql -h` / `pgbench -h`).
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The directory holding the PostgreSQL binaries in use.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// Stops the server cleanly (a fast shutdown) and waits for it.
    pub fn stop(&mut self) -> Result<(), Error> {
        self.pg_ctl(&["stop", "-m", "fast", "-w"], "stopping PostgreSQL")
    }

    /// Stops the server abruptly (an immediate shutdown: no checkpoint, as in a crash; the next
    /// start recovers from the write-ahead log).
    pub fn crash(&mut self) -> Result<(), Error> {
        self.pg_ctl(&["stop", "-m", "immediate", "-w"], "crashing PostgreSQL")
    }

    /// Starts a server that was stopped with [`Cluster::stop`] on the same data.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.pg_ctl_start()
    }

    /// Starts a hot standby of this cluster in `data_dir` (which must not exist or be empty):
    /// a base backup streaming from this server, then a server in recovery following it.
    pub fn start_standby(&self, data_dir: &Path, lifetime: Lifetime) -> Result<Cluster, Error> {
        fs::create_dir_all(data_dir).map_err(io_err(format!("creating {}", data_dir.display())))?;
        fs::set_permissions(data_dir, fs::Permissions::from_mode(0o700))
            .map_err(io_err(format!("securing {}", data_dir.display())))?;
        if let Some(user) = &self.run_as {
            std::os::unix::fs::chown(data_dir, Some(user.uid), Some(user.gid)).map_err(io_err(
                format!("handing {} to the postgres user", data_dir.display()),
            ))?;
        }
        let mut cmd = self.command("pg_basebackup");
        cmd.arg("-D")
            .arg(data_dir)
            .arg("-h")
            .arg(&self.socket_dir)
            .args(["-p", &PORT.to_string(), "-U", SUPERUSER])
            .args(["-R", "-X", "stream", "--checkpoint=fast", "--no-sync"]);
        run(cmd, "taking a base backup")?;
        Cluster::start(data_dir, lifetime)
    }

    /// Runs a PostgreSQL client program (`pg_dump`, `psql`, …) of this installation against
    /// this server, with `args` after the connection options; returns its standard output.
    pub fn client(&self, program: &str, database: &str, args: &[&str]) -> Result<Vec<u8>, Error> {
        let mut cmd = Command::new(self.bin_dir.join(program));
        cmd.arg("-h")
            .arg(&self.socket_dir)
            .args(["-p", &PORT.to_string(), "-U", SUPERUSER, "-d", database])
            .args(args)
            .stdin(Stdio::null());
        let output = cmd.output().map_err(io_err(format!("running {program}")))?;
        if output.status.success() {
            Ok(output.stdout)
        } else {
            Err(Error::Command {
                action: program.into(),
                detail: format!(
                    "{}: {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
            })
        }
    }

    fn initdb(&self) -> Result<(), Error> {
        let mut cmd = self.command("initdb");
        cmd.arg("-D")
            .arg(&self.data_dir)
            .args(["-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C"])
            .arg("--no-sync");
        run(cmd, "initdb")
    }

    fn pg_ctl_start(&self) -> Result<(), Error> {
        let mut options = format!(
            "-k {} -p {PORT} -c listen_addresses= -c max_connections=300 \
             -c shared_buffers=256MB -c max_wal_size=2GB",
            self.socket_dir.display()
        );
        for (name, value) in &self.settings {
            options.push_str(&format!(" -c {name}={value}"));
        }
        let log = self.data_dir.join("server.log");
        let mut cmd = self.command("pg_ctl");
        cmd.arg("start")
            .arg("-w")
            .arg("-t")
            .arg("60")
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&log)
            .arg("-o")
            .arg(options)
            // Its own process group: a Ctrl-C meant for us must not kill the server mid-drain.
            .process_group(0);
        run(cmd, "starting PostgreSQL").map_err(|err| match fs::read_to_string(&log) {
            Ok(text) => Error::Command {
                action: "starting PostgreSQL".into(),
                detail: format!("{err}; server log tail:\n{}", tail(&text, 15)),
            },
            Err(_) => err,
        })
    }

    fn pg_ctl(&self, args: &[&str], action: &str) -> Result<(), Error> {
        let mut cmd = self.command("pg_ctl");
        cmd.arg("-D").arg(&self.data_dir).args(args);
        run(cmd, action)
    }

    fn spawn_watchdog(&self, lifetime: Lifetime) -> Result<(Child, ChildStdin), Error> {
        let pg_ctl = self.bin_dir.join("pg_ctl");
        let mut script = String::from("cat >/dev/null; ");
        let stop = format!(
            "{} -D '{}' stop -m {} -w >/dev/null 2>&1",
            pg_ctl.display(),
            self.data_dir.display(),
            match lifetime {
                Lifetime::Persistent => "fast",
                Lifetime::Temporary => "immediate",
            }
        );
        match &self.run_as {
            // The watchdog itself stays root so it can remove root-created parents; only the
            // stop runs as the server's user.
            Some(user) => script.push_str(&format!("su -s /bin/sh {} -c \"{stop}\"; ", user.name)),
            None => script.push_str(&format!("{stop}; ")),
        }
        script.push_str(&format!("rm -rf '{}'", self.socket_dir.display()));
        if lifetime == Lifetime::Temporary {
            script.push_str(&format!("; rm -rf '{}'", self.data_dir.display()));
        }
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(io_err("starting the PostgreSQL watchdog"))?;
        let mut stdin = child.stdin.take().ok_or_else(|| Error::Command {
            action: "starting the PostgreSQL watchdog".into(),
            detail: "no pipe".into(),
        })?;
        // Make sure the pipe works before relying on it.
        stdin
            .write_all(b"\n")
            .map_err(io_err("talking to the PostgreSQL watchdog"))?;
        Ok((child, stdin))
    }

    /// A command for one of the PostgreSQL binaries, run as the unprivileged user when needed.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(program));
        cmd.current_dir(&self.data_dir);
        if let Some(user) = &self.run_as {
            cmd.uid(user.uid).gid(user.gid).env("HOME", &self.data_dir);
        }
        cmd
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some((mut child, stdin)) = self.watchdog.take() {
            drop(stdin);
            let _ = child.wait();
        }
    }
}

fn run(mut cmd: Command, action: &str) -> Result<(), Error> {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(io_err(action.to_string()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            action: action.into(),
            detail: format!(
                "{}: {}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim(),
                String::from_utf8_lossy(&output.stdout).trim()
            ),
        })
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The shared buffers, in MiB, of a cluster that has the machine to itself: a quarter of its
/// memory (PostgreSQL's usual advice), between the default 256 MiB and 8 GiB; `None` when the
/// memory cannot be read (the default then stays).
///
/// Measured with the `search` benchmark on 1,000,000 items (2 cores, 23.5 GiB): 256 MB of
/// buffers and 2 GB of WAL between checkpoints wrote 2,711 items/s, with backends writing
/// dirty buffers out themselves once the tables outgrew the buffers; 6 GB of buffers and 8 GB
/// of WAL wrote 3,644 items/s.
pub fn machine_sized_buffers() -> Option<u64> {
    let meminfo = fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some((kib / 1024 / 4).clamp(256, 8 * 1024))
}

/// Finds the directory with `initdb` and `pg_ctl`: `CHRONICLE_PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin` (Debian's layout), else the directory of `initdb` on `PATH`.
pub fn find_binaries() -> Result<PathBuf, Error> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Ok(dir) = std::env::var("CHRONICLE_PG_BIN") {
        let dir = PathBuf::from(dir);
        return if has_tools(&dir) {
            Ok(dir)
        } else {
            Err(Error::BinariesNotFound)
        };
    }
    let mut debian: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            has_tools(&bin).then_some((version, bin))
        })
        .collect();
    debian.sort();
    if let Some((_, bin)) = debian.pop() {
        return Ok(bin);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .find(|dir| has_tools(dir))
        .ok_or(Error::BinariesNotFound)
}

/// `None` when we are not root; otherwise the account to run the server as.
fn unprivileged_user() -> Result<Option<RunAs>, Error> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = std::env::var("CHRONICLE_PG_USER").unwrap_or_else(|_| "postgres".into());
    let c_name = CString::new(name.clone()).map_err(|_| Error::NoUnprivilegedUser(name.clone()))?;
    // SAFETY: c_name is a valid NUL-terminated string; the returned record is copied at once,
    // before any other call could overwrite libc's static buffer.
    let entry = unsafe { libc::getpwnam(c_name.as_ptr()) };
    if entry.is_null() {
        return Err(Error::NoUnprivilegedUser(name));
    }
    // SAFETY: entry is non-null and points at libc's passwd record.
    let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
    if uid == 0 {
        return Err(Error::NoUnprivilegedUser(name));
    }
    Ok(Some(RunAs { name, uid, gid }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_sized_to_the_machine_runs_with_its_share_of_the_memory() {
        let dir = tempfile::Builder::new()
            .prefix("chronicle-test-")
            .tempdir_in("/tmp")
            .unwrap()
            .keep();
        let cluster = Cluster::start_sized_to_machine(&dir, Lifetime::Temporary).unwrap();
        let show = |query: &str| {
            let out = cluster
                .client("psql", "postgres", &["-Atc", query])
                .unwrap();
            String::from_utf8(out).unwrap().trim().to_owned()
        };
        let buffers_mib = show(
            "SELECT setting::bigint * 8 / 1024 FROM pg_settings WHERE name = 'shared_buffers'",
        );
        let expected = machine_sized_buffers().expect("this machine's memory");
        assert_eq!(buffers_mib, expected.to_string());
        assert!((256..=8 * 1024).contains(&expected), "{expected} MiB");
        assert_eq!(show("SHOW max_wal_size"), "8GB");
    }
}
