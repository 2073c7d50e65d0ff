//! Re-verifying stored backups: every byte is read again and checked against the hashes the
//! manifest recorded when the backup was written.

use std::path::Path;

use caasctl_core::{Message, Progress};

use crate::repo::Manifest;

/// Result of re-verifying one backup.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyReport {
    /// Backup ID.
    pub id: String,
    /// True when every check passed.
    pub ok: bool,
    /// Each failed check, in English.
    pub problems: Vec<String>,
    /// Bytes read.
    pub bytes: u64,
    #[serde(skip)]
    /// Localisable form of each problem.
    pub messages: Vec<Message>,
}

/// Re-reads every byte of a backup: the snapshot's SHA-256 against the manifest, etcd's appended
/// hash against the database bytes, and each config archive against its recorded hash.
pub fn verify_backup(dir: &Path, manifest: &Manifest, progress: &dyn Progress) -> VerifyReport {
    let mut report = VerifyReport { id: manifest.id.clone(), ok: true, problems: Vec::new(), bytes: 0, messages: Vec::new() };
    let fail = |report: &mut VerifyReport, message: Message| {
        report.ok = false;
        report.problems.push(message.render(caasctl_core::Lang::En));
        report.messages.push(message);
    };

    let snapshot_path = dir.join(&manifest.snapshot.file);
    match crate::snapshot::hash_file(&snapshot_path, progress) {
        Err(error) => fail(&mut report, Message::new("repo.verify.unreadable").arg("file", &manifest.snapshot.file).arg("reason", error)),
        Ok(digest) => {
            report.bytes += digest.size;
            if digest.size != manifest.snapshot.size {
                fail(
                    &mut report,
                    Message::new("repo.verify.size").arg("file", &manifest.snapshot.file).arg("expected", manifest.snapshot.size).arg("actual", digest.size),
                );
            }
            if digest.file_sha256 != manifest.snapshot.sha256 {
                fail(
                    &mut report,
                    Message::new("repo.verify.sha256").arg("file", &manifest.snapshot.file).arg("expected", &manifest.snapshot.sha256).arg("actual", &digest.file_sha256),
                );
            }
            if !digest.appended_hash_matches() {
                fail(&mut report, Message::new("repo.verify.appended").arg("file", &manifest.snapshot.file));
            }
        }
    }

    for archive in &manifest.config_archives {
        match crate::config_archive::sha256_file(&dir.join(&archive.file)) {
            Err(error) => fail(&mut report, Message::new("repo.verify.unreadable").arg("file", &archive.file).arg("reason", error)),
            Ok((size, sha256)) => {
                report.bytes += size;
                if sha256 != archive.sha256 {
                    fail(&mut report, Message::new("repo.verify.sha256").arg("file", &archive.file).arg("expected", &archive.sha256).arg("actual", sha256));
                }
            }
        }
    }
    report
}
