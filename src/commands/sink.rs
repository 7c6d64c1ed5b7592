/*!
Where a command's output goes: stdout, or a file written atomically, and never onto what the
command reads.

`-o`/`--report` refuse the database file (and its `-wal`, `-shm`, `-journal`), every input
file of the same command, a directory, a device, a FIFO and a socket: an export must never
replace the data it exports, nor a device node the user pointed at by mistake. A symlink is
refused too unless `--force`, and then it is its target that is replaced, never the link.
Files are compared by their resolved path and, where they exist, by device and inode, so a
hard link or `./data/../data/books.db` is the same file.
*/

use super::*;

use std::path::PathBuf;

/// The files a command's output must never replace, and whether a symlink may be written
/// through.
#[derive(Debug, Clone, Default)]
pub(super) struct Guard {
    /// Each file with what it is to this command.
    protected: Vec<(PathBuf, &'static str)>,
    force: bool,
}

impl Guard {
    /// The database of `--db` (a SQLite file and its companions) and `--force`.
    pub(super) fn new(cli: &Cli) -> Guard {
        let mut protected = Vec::new();
        if let crate::store::Location::Sqlite(db) = &cli.db {
            protected.push((db.clone(), "the database"));
            for suffix in ["-wal", "-shm", "-journal"] {
                let mut name = db.clone().into_os_string();
                name.push(suffix);
                protected.push((PathBuf::from(name), "a file of the database"));
            }
        }
        Guard {
            protected,
            force: cli.force,
        }
    }

    /// Also the command's input files (`-`, standard input, is none).
    pub(super) fn with_inputs(mut self, files: &[String]) -> Guard {
        self.protected.extend(
            files
                .iter()
                .filter(|f| *f != "-")
                .map(|f| (PathBuf::from(f), "an input of this command")),
        );
        self
    }

    /// The file that writing to `path` replaces, or why it must not be written.
    pub(super) fn check(&self, path: &Path) -> anyhow::Result<PathBuf> {
        let refuse = |why: &str| -> anyhow::Error {
            crate::UsageError(format!(
                "refusing to write {}: {why}",
                crate::terminal::safe(&path.display().to_string())
            ))
            .into()
        };
        let target = match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => {
                if !self.force {
                    return Err(refuse(
                        "it is a symbolic link; pass --force to replace the file it points to \
                         (the link stays)",
                    ));
                }
                std::fs::canonicalize(path)
                    .map_err(|e| refuse(&format!("the link points nowhere readable ({e})")))?
            }
            _ => path.to_path_buf(),
        };
        if let Ok(meta) = std::fs::metadata(&target) {
            let kind = meta.file_type();
            if kind.is_dir() {
                return Err(refuse("it is a directory"));
            }
            if !kind.is_file() {
                return Err(refuse(
                    "it is not a regular file (a device, a FIFO or a socket)",
                ));
            }
        }
        let real = resolved(&target);
        for (p, what) in &self.protected {
            if resolved(p) == real || same_inode(p, &target) {
                return Err(refuse(&format!(
                    "it is {what} ({})",
                    crate::terminal::safe(&p.display().to_string())
                )));
            }
        }
        Ok(target)
    }
}

/// `path` absolute with its links resolved; for a file not yet made, its directory's.
fn resolved(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            std::fs::canonicalize(dir)
                .map(|d| d.join(name))
                .unwrap_or_else(|_| path.to_path_buf())
        }
        _ => path.to_path_buf(),
    }
}

#[cfg(unix)]
fn same_inode(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_inode(_: &Path, _: &Path) -> bool {
    false
}

/// Where a command's output goes: stdout, or a file written atomically (a temporary file in
/// the same directory, renamed over the target only when everything was written).
pub(super) enum Sink {
    Stdout,
    File {
        temp: tempfile::NamedTempFile,
        path: std::path::PathBuf,
    },
}

impl Sink {
    /// `None` or `-` is stdout; a file is checked against `guard` first.
    pub(super) fn open(path: Option<&Path>, guard: &Guard) -> anyhow::Result<Sink> {
        let Some(path) = path.filter(|p| p.as_os_str() != "-") else {
            return Ok(Sink::Stdout);
        };
        let path = guard.check(path)?;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut builder = tempfile::Builder::new();
        builder.prefix(".isbn-crawler-");
        // A result file, readable like any other the user makes (not the 0600 of a temp file).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o644));
        }
        let temp = builder
            .tempfile_in(dir)
            .map_err(|e| cannot_write(&path, e))?;
        Ok(Sink::File { temp, path })
    }

    pub(super) fn writer(&mut self) -> std::io::BufWriter<Box<dyn std::io::Write + '_>> {
        let inner: Box<dyn std::io::Write + '_> = match self {
            Sink::Stdout => Box::new(std::io::stdout().lock()),
            Sink::File { temp, .. } => Box::new(temp.as_file_mut()),
        };
        std::io::BufWriter::with_capacity(64 * 1024, inner)
    }

    /// Puts the file in place; dropping a `Sink` without this leaves no file behind.
    pub(super) fn finish(self) -> anyhow::Result<()> {
        if let Sink::File { temp, path } = self {
            temp.persist(&path)
                .map_err(|e| cannot_write(&path, e.error))?;
        }
        Ok(())
    }
}

/// "cannot write PATH: why", without the temporary file's name that tempfile adds.
pub(super) fn cannot_write(path: &Path, e: std::io::Error) -> anyhow::Error {
    // tempfile appends its own file's name (`... at path "/dir/.isbn-crawler-x"`): drop it.
    let text = e.to_string();
    let why = text.split(" at path ").next().unwrap_or(&text);
    anyhow::anyhow!(
        "cannot write {}: {why}",
        crate::terminal::safe(&path.display().to_string())
    )
}
