//! Re-verifying stored backups: every byte is read again and checked against the hashes the
//! manifest recorded when the backup was written.
//!
//! For an encrypted backup the stored bytes are checked against the ciphertext hashes. With an
//! identity the files are also decrypted and the plaintext is checked like a plain backup; without
//! one the report says that only the ciphertext was checked (`scope: ciphertext`).

use std::io::{self, BufReader, Read};
use std::path::Path;

use caasctl_core::{Lang, Message, Progress};

use crate::blob::{HashingReader, Identities};
use crate::repo::Manifest;
use crate::snapshot::{SnapshotDigest, SnapshotHasher};

/// Result of re-verifying one backup.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyReport {
    /// Backup ID.
    pub id: String,
    /// True when every check passed.
    pub ok: bool,
    /// `full` when the plaintext was checked, `ciphertext` when only the stored bytes were.
    pub scope: &'static str,
    /// Each failed check, in English.
    pub problems: Vec<String>,
    /// Bytes read.
    pub bytes: u64,
    #[serde(skip)]
    /// Localisable form of each problem.
    pub messages: Vec<Message>,
    /// True when the identities given open none of the backup's recipients: an operator error,
    /// not a fault of the backup.
    #[serde(skip)]
    pub wrong_identity: bool,
}

impl VerifyReport {
    fn fail(&mut self, message: Message) {
        self.ok = false;
        self.problems.push(message.render(Lang::En));
        self.messages.push(message);
    }

    fn compare(&mut self, file: &str, what: &'static str, expected: &str, actual: &str) {
        if expected != actual {
            let key = if what == "size" { "repo.verify.size" } else { "repo.verify.sha256" };
            self.fail(Message::new(key).arg("file", file).arg("expected", expected).arg("actual", actual));
        }
    }
}

/// Opens a stored file of a backup by its name in the manifest.
pub type Opener<'a> = &'a (dyn Fn(&str) -> io::Result<Box<dyn Read + Send>> + Sync);

/// Re-reads every byte of a backup in a local directory: the snapshot's SHA-256 against the
/// manifest, etcd's appended hash against the database bytes, and each config archive against
/// its recorded hash. Encrypted backups are checked by their ciphertext only.
pub fn verify_backup(dir: &Path, manifest: &Manifest, progress: &dyn Progress) -> VerifyReport {
    let open = |file: &str| -> io::Result<Box<dyn Read + Send>> { Ok(Box::new(std::fs::File::open(dir.join(file))?)) };
    verify_stored(&open, manifest, None, progress)
}

/// Re-reads every stored file of a backup through `open`, decrypting with `identities` when the
/// backup is encrypted and they are given.
pub fn verify_stored(open: Opener<'_>, manifest: &Manifest, identities: Option<&Identities>, progress: &dyn Progress) -> VerifyReport {
    let encrypted = manifest.encryption.is_some();
    let full = !encrypted || identities.is_some();
    let mut report = VerifyReport {
        id: manifest.id.clone(),
        ok: true,
        scope: if full { "full" } else { "ciphertext" },
        problems: Vec::new(),
        bytes: 0,
        messages: Vec::new(),
        wrong_identity: false,
    };

    let snapshot = &manifest.snapshot;
    let total = snapshot.ciphertext_size.unwrap_or(snapshot.size);
    progress.start(&snapshot.file, Some(total));
    let read = read_file(open, &snapshot.file, encrypted, identities, progress);
    progress.finish();
    match read {
        // The decryptor reports an identity that matches no recipient as PermissionDenied.
        Err(error) if encrypted && error.kind() == io::ErrorKind::PermissionDenied => {
            report.wrong_identity = true;
            report.fail(Message::new("repo.verify.unreadable").arg("file", &snapshot.file).arg("reason", error));
        }
        Err(error) => report.fail(Message::new("repo.verify.unreadable").arg("file", &snapshot.file).arg("reason", error)),
        Ok(read) => {
            report.bytes += read.stored.0;
            if encrypted {
                check_ciphertext(&mut report, &snapshot.file, read.stored, snapshot.ciphertext_size, snapshot.ciphertext_sha256.as_deref());
            }
            if let Some(plain) = read.plain {
                report.compare(&snapshot.file, "size", &snapshot.size.to_string(), &plain.size.to_string());
                report.compare(&snapshot.file, "sha256", &snapshot.sha256, &plain.file_sha256);
                // A v2 backup's file is a tar.gz archive, which carries no appended hash.
                let has_trailer = manifest.kind != crate::v2_backup::V2_BACKUP_KIND;
                if has_trailer && !plain.appended_hash_matches() {
                    report.fail(Message::new("repo.verify.appended").arg("file", &snapshot.file));
                }
            }
        }
    }

    for archive in &manifest.config_archives {
        match read_file(open, &archive.file, encrypted, identities, &caasctl_core::NoProgress) {
            Err(error) => report.fail(Message::new("repo.verify.unreadable").arg("file", &archive.file).arg("reason", error)),
            Ok(read) => {
                report.bytes += read.stored.0;
                if encrypted {
                    check_ciphertext(&mut report, &archive.file, read.stored, archive.ciphertext_size, archive.ciphertext_sha256.as_deref());
                }
                if let Some(plain) = read.plain {
                    report.compare(&archive.file, "sha256", &archive.sha256, &plain.file_sha256);
                }
            }
        }
    }
    report
}

fn check_ciphertext(report: &mut VerifyReport, file: &str, stored: (u64, String), size: Option<u64>, sha256: Option<&str>) {
    match (size, sha256) {
        (Some(size), Some(sha256)) => {
            report.compare(file, "size", &size.to_string(), &stored.0.to_string());
            report.compare(file, "sha256", sha256, &stored.1);
        }
        _ => report.fail(Message::new("repo.verify.no_ciphertext_hash").arg("file", file)),
    }
}

struct FileRead {
    /// Size and SHA-256 of the stored bytes.
    stored: (u64, String),
    /// Hashes of the plaintext, when it could be read.
    plain: Option<SnapshotDigest>,
}

/// Reads one stored file to its end, hashing the stored bytes and, where possible, the plaintext.
fn read_file(open: Opener<'_>, file: &str, encrypted: bool, identities: Option<&Identities>, progress: &dyn Progress) -> io::Result<FileRead> {
    let raw = ProgressReader { inner: open(file)?, progress };
    let hashing = HashingReader::new(raw);
    let stored = hashing.handle();
    let plain = match (encrypted, identities) {
        (false, _) => Some(hash_all(hashing)?),
        (true, Some(identities)) => {
            let decrypted = identities.decrypt(BufReader::with_capacity(1 << 20, hashing))?;
            Some(hash_all(decrypted)?)
        }
        (true, None) => {
            let mut hashing = hashing;
            io::copy(&mut hashing, &mut io::sink())?;
            None
        }
    };
    Ok(FileRead { stored: stored.digest(), plain })
}

fn hash_all(mut reader: impl Read) -> io::Result<SnapshotDigest> {
    let mut hasher = SnapshotHasher::default();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.update(&buffer[..n]);
    }
}

/// A reader that reports every byte it passes on to a progress display.
pub(crate) struct ProgressReader<'a> {
    pub(crate) inner: Box<dyn Read + Send>,
    pub(crate) progress: &'a dyn Progress,
}

impl Read for ProgressReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}
