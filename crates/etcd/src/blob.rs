//! The stored side of a backup file: where its bytes go (a local file or an object upload, behind
//! [`BlobSink`]), optional age encryption on the way there, and the SHA-256 of the bytes that
//! were actually stored, so that a backup can be checked without its key.
//!
//! Encryption uses age with X25519 recipients. The plaintext is hashed before it reaches the
//! encryptor, so the hashes in a manifest mean the same with and without encryption; the
//! ciphertext hash is recorded beside them.

use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// Name of the only encryption scheme caasctl writes.
pub const AGE_SCHEME: &str = "age";
/// File name suffix of an age-encrypted file.
pub const AGE_SUFFIX: &str = ".age";

/// A destination for the bytes of one stored file.
pub trait BlobSink: Write + Send {
    /// Makes the written bytes durable and visible: fsync of a file, completion of an upload.
    ///
    /// # Errors
    /// The bytes could not be made durable; the caller then calls nothing else.
    fn commit(self: Box<Self>) -> io::Result<()>;

    /// Drops what was written: the part file is removed, the upload aborted. Best effort.
    fn abort(self: Box<Self>);
}

/// A new local file, created with mode 0600 and never overwriting.
pub struct FileSink {
    file: std::fs::File,
    path: PathBuf,
}

impl FileSink {
    /// Creates `path`, which must not exist.
    ///
    /// # Errors
    /// The file cannot be created.
    pub fn create(path: &Path) -> io::Result<FileSink> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
        Ok(FileSink { file, path: path.to_owned() })
    }
}

impl Write for FileSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl BlobSink for FileSink {
    fn commit(self: Box<Self>) -> io::Result<()> {
        self.file.sync_all()
    }

    fn abort(self: Box<Self>) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A writer that counts and hashes what passes through it.
pub struct HashingWriter<W> {
    /// The wrapped writer.
    pub inner: W,
    /// `None` when only bytes are counted (see [`StoredWriter::new_hashed_upstream`]).
    hasher: Option<Sha256>,
    written: u64,
}

impl<W> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter { inner, hasher: Some(Sha256::new()), written: 0 }
    }

    /// Wraps `inner`, counting bytes without hashing them.
    fn counting(inner: W) -> Self {
        HashingWriter { inner, hasher: None, written: 0 }
    }

    /// Returns the byte count and hex SHA-256 of everything written; the hash is empty for a
    /// counting writer.
    pub fn digest(&self) -> (u64, String) {
        (self.written, self.hasher.clone().map(|h| hex::encode(h.finalize())).unwrap_or_default())
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that counts and hashes what passes through it; [`HashingReader::handle`] reads the
/// digest even after the reader was moved into a decryptor.
pub struct HashingReader<R> {
    inner: R,
    state: std::sync::Arc<std::sync::Mutex<(Sha256, u64)>>,
}

/// The digest of a [`HashingReader`] so far.
#[derive(Clone)]
pub struct ReadDigest(std::sync::Arc<std::sync::Mutex<(Sha256, u64)>>);

impl ReadDigest {
    /// Returns the byte count and hex SHA-256 of everything read.
    pub fn digest(&self) -> (u64, String) {
        let state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (state.1, hex::encode(state.0.clone().finalize()))
    }
}

impl<R> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader { inner, state: std::sync::Arc::new(std::sync::Mutex::new((Sha256::new(), 0))) }
    }

    /// Returns a handle to the digest.
    pub fn handle(&self) -> ReadDigest {
        ReadDigest(self.state.clone())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0.update(&buf[..n]);
        state.1 += n as u64;
        Ok(n)
    }
}

/// Size and SHA-256 of the bytes that were stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDigest {
    /// Bytes stored.
    pub size: u64,
    /// SHA-256 of the stored bytes, hex.
    pub sha256: String,
}

enum Stage {
    Plain(HashingWriter<Box<dyn BlobSink>>),
    Age(age::stream::StreamWriter<HashingWriter<Box<dyn BlobSink>>>),
}

/// The writer of one stored file: optional age encryption, then the stored-bytes hash, then the
/// sink. Call [`StoredWriter::finish`] or [`StoredWriter::abort`]; dropping it leaves the sink
/// neither committed nor aborted.
pub struct StoredWriter {
    stage: Stage,
}

impl StoredWriter {
    /// Starts a stored file on `sink`, encrypted to `recipients` when there are any.
    ///
    /// # Errors
    /// The age header cannot be written.
    pub fn new(sink: Box<dyn BlobSink>, recipients: &[age::x25519::Recipient]) -> io::Result<StoredWriter> {
        let hashing = HashingWriter::new(sink);
        if recipients.is_empty() {
            return Ok(StoredWriter { stage: Stage::Plain(hashing) });
        }
        let encryptor = age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient)).map_err(io::Error::other)?;
        Ok(StoredWriter { stage: Stage::Age(encryptor.wrap_output(hashing)?) })
    }

    /// Like [`StoredWriter::new`], for a caller that hashes the plaintext itself. A plain file is
    /// then not hashed a second time: [`StoredWriter::finish`] returns an empty `sha256` for it,
    /// and the caller's plaintext hash is the stored bytes' hash. An encrypted file is hashed here
    /// as usual, because its stored bytes differ from the plaintext.
    ///
    /// # Errors
    /// The age header cannot be written.
    pub fn new_hashed_upstream(sink: Box<dyn BlobSink>, recipients: &[age::x25519::Recipient]) -> io::Result<StoredWriter> {
        if recipients.is_empty() {
            return Ok(StoredWriter { stage: Stage::Plain(HashingWriter::counting(sink)) });
        }
        StoredWriter::new(sink, recipients)
    }

    /// Finishes encryption, commits the sink and returns the stored bytes' digest.
    ///
    /// # Errors
    /// Writing the last bytes or committing failed; the sink was aborted.
    pub fn finish(self) -> io::Result<StoredDigest> {
        let mut hashing = match self.stage {
            Stage::Plain(hashing) => hashing,
            Stage::Age(writer) => writer.finish()?,
        };
        if let Err(error) = hashing.flush() {
            hashing.inner.abort();
            return Err(error);
        }
        let (size, sha256) = hashing.digest();
        hashing.inner.commit()?;
        Ok(StoredDigest { size, sha256 })
    }

    /// Abandons the file: the sink is aborted.
    pub fn abort(self) {
        match self.stage {
            Stage::Plain(hashing) => hashing.inner.abort(),
            // NOTE: age's StreamWriter gives its inner writer back only through finish(), which
            // writes a last chunk first; an abandoned stream is finished and then aborted.
            Stage::Age(writer) => {
                if let Ok(hashing) = writer.finish() {
                    hashing.inner.abort();
                }
            }
        }
    }
}

impl Write for StoredWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.stage {
            Stage::Plain(w) => w.write(buf),
            Stage::Age(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.stage {
            Stage::Plain(w) => w.flush(),
            Stage::Age(w) => w.flush(),
        }
    }
}

/// An encryption setting or key file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A recipient is not an age X25519 public key.
    #[error("invalid age recipient {}", redact_secret(value))]
    BadRecipient {
        /// The value given.
        value: String,
    },
    /// A recipients or identity file cannot be read.
    #[error("failed to read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// An identity file holds no usable identity.
    #[error("{} holds no age identity", path.display())]
    NoIdentity {
        /// The file.
        path: PathBuf,
    },
    /// `keygen` never replaces an existing file: that would lose the only key to older backups.
    #[error("{} already exists", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// A new identity file cannot be written.
    #[error("failed to write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// No identity of the file matches a recipient of the backup.
    #[error("no identity in {} opens backup {id}", path.display())]
    WrongIdentity {
        /// The identity file.
        path: PathBuf,
        /// Backup ID.
        id: String,
    },
}

impl caasctl_core::Localize for KeyError {
    fn message(&self) -> caasctl_core::Message {
        use caasctl_core::Message;
        match self {
            KeyError::BadRecipient { value } => Message::new("crypt.error.bad_recipient").arg("value", redact_secret(value)),
            KeyError::Read { path, source } => Message::new("crypt.error.read").arg("path", path.display()).arg("reason", source),
            KeyError::NoIdentity { path } => Message::new("crypt.error.no_identity").arg("path", path.display()),
            KeyError::Exists { path } => Message::new("crypt.error.exists").arg("path", path.display()),
            KeyError::Write { path, source } => Message::new("crypt.error.write").arg("path", path.display()).arg("reason", source),
            KeyError::WrongIdentity { path, id } => Message::new("crypt.error.wrong_identity").arg("path", path.display()).arg("id", id),
        }
    }

    fn hint(&self) -> Option<caasctl_core::Message> {
        match self {
            KeyError::Exists { .. } => Some(caasctl_core::Message::new("crypt.hint.exists")),
            KeyError::WrongIdentity { .. } => Some(caasctl_core::Message::new("crypt.hint.wrong_identity")),
            KeyError::Write { .. } => Some(caasctl_core::Message::new("crypt.hint.write")),
            _ => Some(caasctl_core::Message::new("crypt.hint.keys")),
        }
    }
}

/// Hides a secret key pasted where a public key belongs, keeping only its type for the message.
fn redact_secret(value: &str) -> String {
    if value.trim_start().to_ascii_uppercase().starts_with("AGE-SECRET-KEY-") {
        "AGE-SECRET-KEY-… (a secret key, not shown)".to_owned()
    } else {
        value.to_owned()
    }
}

/// Parses age X25519 recipients (`age1...`).
///
/// # Errors
/// [`KeyError::BadRecipient`] for the first value that is not one.
pub fn parse_recipients<S: AsRef<str>>(values: &[S]) -> Result<Vec<age::x25519::Recipient>, KeyError> {
    values
        .iter()
        .map(|v| age::x25519::Recipient::from_str(v.as_ref().trim()).map_err(|_| KeyError::BadRecipient { value: v.as_ref().to_owned() }))
        .collect()
}

/// Reads a recipients file: one `age1...` key a line, `#` comments and blank lines skipped.
///
/// # Errors
/// [`KeyError`].
pub fn read_recipients_file(path: &Path) -> Result<Vec<String>, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read { path: path.to_owned(), source })?;
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned).collect())
}

/// Writes a new X25519 identity to `path`, readable by its owner only, and returns its public
/// key (`age1...`), the recipient to put into the configuration. An existing file is refused.
///
/// # Errors
/// [`KeyError::Exists`] or [`KeyError::Write`].
pub fn generate_identity(path: &Path) -> Result<String, KeyError> {
    use age::secrecy::ExposeSecret;
    use std::os::unix::fs::OpenOptionsExt;

    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let created = caasctl_core::timefmt::rfc3339(caasctl_core::timefmt::now());
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(|source| {
        if source.kind() == io::ErrorKind::AlreadyExists {
            KeyError::Exists { path: path.to_owned() }
        } else {
            KeyError::Write { path: path.to_owned(), source }
        }
    })?;
    let text = format!("# created: {created}\n# public key: {recipient}\n{}\n", identity.to_string().expose_secret());
    file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(|source| KeyError::Write { path: path.to_owned(), source })?;
    Ok(recipient)
}

/// Identities that can decrypt a backup, read from an age identity file (`AGE-SECRET-KEY-1...`).
pub struct Identities {
    identities: Vec<age::x25519::Identity>,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identities({} redacted)", self.identities.len())
    }
}

impl Identities {
    /// Reads an X25519 identity file: `AGE-SECRET-KEY-1...` lines, `#` comments skipped.
    ///
    /// # Errors
    /// [`KeyError`].
    pub fn read(path: &Path) -> Result<Identities, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read { path: path.to_owned(), source })?;
        let mut identities = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let identity = age::x25519::Identity::from_str(line).map_err(|_| KeyError::NoIdentity { path: path.to_owned() })?;
            identities.push(identity);
        }
        if identities.is_empty() {
            return Err(KeyError::NoIdentity { path: path.to_owned() });
        }
        Ok(Identities { identities })
    }

    /// Wraps a reader of age ciphertext in one that yields the plaintext.
    ///
    /// # Errors
    /// The header is invalid or none of the identities opens it.
    pub fn decrypt<'a, R: BufRead + 'a>(&'a self, input: R) -> io::Result<Box<dyn Read + 'a>> {
        let decryptor = age::Decryptor::new_buffered(input).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let reader = decryptor
            .decrypt(self.identities.iter().map(|i| i as &dyn age::Identity))
            .map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, e))?;
        Ok(Box::new(reader))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct MemorySink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for MemorySink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl BlobSink for MemorySink {
        fn commit(self: Box<Self>) -> io::Result<()> {
            Ok(())
        }
        fn abort(self: Box<Self>) {}
    }

    #[test]
    fn encrypted_round_trip_and_ciphertext_hash() {
        let identity = age::x25519::Identity::generate();
        let stored = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut writer = StoredWriter::new(Box::new(MemorySink(stored.clone())), &[identity.to_public()]).unwrap();
        let plaintext: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        writer.write_all(&plaintext).unwrap();
        let digest = writer.finish().unwrap();

        let ciphertext = stored.lock().unwrap().clone();
        assert_ne!(&ciphertext[..plaintext.len().min(ciphertext.len())], &plaintext[..]);
        assert_eq!(digest.size, ciphertext.len() as u64);
        assert_eq!(digest.sha256, hex::encode(Sha256::digest(&ciphertext)));

        let identities = Identities { identities: vec![identity] };
        let mut out = Vec::new();
        identities.decrypt(io::Cursor::new(ciphertext)).unwrap().read_to_end(&mut out).unwrap();
        assert_eq!(out, plaintext);
    }

    #[test]
    fn recipients_are_checked() {
        let key = age::x25519::Identity::generate().to_public().to_string();
        assert_eq!(parse_recipients(&[key.as_str()]).unwrap().len(), 1);
        assert!(matches!(parse_recipients(&["age1nope"]), Err(KeyError::BadRecipient { .. })));
        let pasted = parse_recipients(&["AGE-SECRET-KEY-1QQQQQQQQQQ"]).unwrap_err();
        assert!(!pasted.to_string().contains("1QQQQQQQQQQ"), "{pasted}");
        assert!(!caasctl_core::Localize::message(&pasted).render(caasctl_core::Lang::En).contains("1QQQQQQQQQQ"));
    }
}
