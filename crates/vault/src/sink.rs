//! A file that receives decrypted plaintext and appears under its name only once the whole
//! record has been authenticated: a failed or truncated release leaves no partial plaintext
//! behind.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rand_core::{OsRng, RngCore};

/// Decrypted plaintext on its way to `target`: written to a hidden partial file (mode 0600)
/// beside it and linked to `target` by [`PlaintextFile::commit`]. Dropped uncommitted, the
/// partial file is truncated and removed.
pub struct PlaintextFile {
    partial: PathBuf,
    target: PathBuf,
    file: Option<File>,
    committed: bool,
}

impl PlaintextFile {
    /// Starts a file for `target`; refuses if `target` exists (nothing is ever overwritten).
    pub fn create(target: &Path) -> io::Result<Self> {
        if target.exists() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} already exists; refusing to overwrite it",
                    target.display()
                ),
            ));
        }
        let name = target
            .file_name()
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} names no file", target.display()),
                )
            })?
            .to_string_lossy()
            .into_owned();
        let mut suffix = [0u8; 8];
        OsRng.fill_bytes(&mut suffix);
        let partial = target.with_file_name(format!(".{name}.partial-{}", hex::encode(suffix)));
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(&partial)?;
        Ok(PlaintextFile {
            partial,
            target: target.to_path_buf(),
            file: Some(file),
            committed: false,
        })
    }

    /// Appends authenticated plaintext.
    pub fn write(&mut self, plaintext: &[u8]) -> io::Result<()> {
        match self.file.as_mut() {
            Some(file) => file.write_all(plaintext),
            None => Err(io::Error::other("the plaintext file is closed")),
        }
    }

    /// Makes the file appear under its name. Call only once the decryptor's `finish` succeeded.
    pub fn commit(mut self) -> io::Result<PathBuf> {
        if let Some(file) = self.file.take() {
            file.sync_all()?;
        }
        // A hard link fails if the target appeared meanwhile: never clobber.
        std::fs::hard_link(&self.partial, &self.target)?;
        std::fs::remove_file(&self.partial)?;
        self.committed = true;
        Ok(self.target.clone())
    }
}

impl Drop for PlaintextFile {
    fn drop(&mut self) {
        if !self.committed {
            if let Some(file) = self.file.take() {
                let _ = file.set_len(0);
            }
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}
