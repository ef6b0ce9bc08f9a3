//! `BENCHMARKS.md`: a header saying how to reproduce the figures, then one section per benchmark,
//! each between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`. A benchmark replaces only its
//! own section, so the file accumulates the latest figures of every benchmark.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use anyhow::Context as _;

use crate::machine::Machine;
use crate::server::{Database, Server};

const HEADER: &str = "# Benchmarks

Figures measured by Chronicle's benchmark harness (`bench/`, binary `chronicle-bench`) for the
performance bars of SPEC §10. Each benchmark measures a Chronicle path next to a raw PostgreSQL
baseline taken in the same run on the same server: the ratios, not the absolute figures, are what
carry over from one machine to another.

To reproduce, run from the workspace root, with PostgreSQL's server binaries and `pgbench`
installed (the harness starts a private throw-away cluster), or with `DATABASE_URL` pointing at a
server where the user may create databases (the harness creates and drops a database of its own):

```sh
cargo run --release -p bench -- append --seconds 10
cargo run --release -p bench -- api --seconds 10
cargo run --release -p bench -- cache --seconds 10
cargo run --release -p bench -- export
cargo run --release -p bench -- search
cargo run --release -p bench -- jobs
```

The `api` benchmark also measures PostGraphile v4 on the same data: it needs Node.js and npm
(Debian: `apt-get install nodejs npm`); the harness installs the version pinned in
`bench/postgraphile/` with `npm ci` when it is missing, and starts and stops it itself.

`cargo run --release -p bench -- help` lists the benchmarks. Each run replaces only its own
section below; the others are kept.
";

/// The circumstances of a run, stated at the top of every section (gathered when it starts).
pub struct Context {
    date: String,
    machine: Machine,
    server: &'static str,
    postgres_version: String,
    fsync: String,
    synchronous_commit: String,
    shared_buffers: String,
    max_wal_size: String,
    command: String,
}

impl Context {
    pub async fn gather(server: &Server, database: &Database) -> anyhow::Result<Context> {
        Ok(Context {
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            machine: Machine::this(),
            server: server.description(),
            postgres_version: database.setting("server_version").await?,
            fsync: database.setting("fsync").await?,
            synchronous_commit: database.setting("synchronous_commit").await?,
            shared_buffers: database.setting("shared_buffers").await?,
            max_wal_size: database.setting("max_wal_size").await?,
            command: crate::reproduce_command(),
        })
    }

    /// The context as a Markdown list.
    pub fn markdown(&self) -> String {
        format!(
            "- Date: {}\n\
             - Machine: {}\n\
             - PostgreSQL: {} on {} (fsync {}, synchronous_commit {}, shared_buffers {}, \
             max_wal_size {})\n\
             - Command: `{}`\n",
            self.date,
            self.machine,
            self.postgres_version,
            self.server,
            self.fsync,
            self.synchronous_commit,
            self.shared_buffers,
            self.max_wal_size,
            self.command,
        )
    }
}

/// Writes `body` as the section `name` of the report at `path`, creating the file if needed.
pub fn write_section(path: &Path, name: &str, body: &str) -> anyhow::Result<()> {
    let document = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == ErrorKind::NotFound => HEADER.to_string(),
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    };
    fs::write(path, replace_section(&document, name, body))
        .with_context(|| format!("writing {}", path.display()))
}

/// `document` with the section `name` replaced by `body`, or added at the end.
fn replace_section(document: &str, name: &str, body: &str) -> String {
    let start = format!("<!-- bench:{name} -->");
    let end = format!("<!-- /bench:{name} -->");
    let section = format!("{start}\n{}\n{end}", body.trim_end());
    if let Some(from) = document.find(&start)
        && let Some(to) = document[from..].find(&end).map(|i| from + i + end.len())
    {
        return format!("{}{section}{}", &document[..from], &document[to..]);
    }
    format!("{}\n\n{section}\n", document.trim_end())
}

#[cfg(test)]
mod tests {
    use super::replace_section;

    #[test]
    fn adds_a_missing_section_at_the_end() {
        let added = replace_section("# Benchmarks\n", "append", "figures\n");
        assert_eq!(
            added,
            "# Benchmarks\n\n<!-- bench:append -->\nfigures\n<!-- /bench:append -->\n"
        );
    }

    #[test]
    fn replaces_only_its_own_section() {
        let document = "# B\n\n<!-- bench:append -->\nold\n<!-- /bench:append -->\n\n\
                        <!-- bench:search -->\nkept\n<!-- /bench:search -->\n";
        let replaced = replace_section(document, "append", "new");
        assert_eq!(
            replaced,
            "# B\n\n<!-- bench:append -->\nnew\n<!-- /bench:append -->\n\n\
             <!-- bench:search -->\nkept\n<!-- /bench:search -->\n"
        );
        assert_eq!(replace_section(&replaced, "append", "new"), replaced);
    }
}
