//! Where a command's output goes: stdout, or a file written atomically.

use super::*;

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
    pub(super) fn open(path: Option<&Path>) -> anyhow::Result<Sink> {
        let Some(path) = path else {
            return Ok(Sink::Stdout);
        };
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
            .map_err(|e| cannot_write(path, e))?;
        Ok(Sink::File {
            temp,
            path: path.to_path_buf(),
        })
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
    anyhow::anyhow!("cannot write {}: {why}", path.display())
}
