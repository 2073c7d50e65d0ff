//! Reading tar streams: [`scan`] records every entry of an archive while its bytes pass on to
//! the repository, and [`check_entries`] rejects the entries a restore must not write.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::path::{Component, Path};

use sha2::{Digest, Sha256};
use tar::EntryType;

use crate::manifest::FileEntry;

/// A reader that copies every byte it reads into a writer, so that the stored archive is
/// exactly the stream that was parsed.
pub struct TeeReader<R, W> {
    inner: R,
    copy: W,
}

impl<R: Read, W: Write> TeeReader<R, W> {
    /// Wraps `inner`; bytes read are written to `copy`.
    pub fn new(inner: R, copy: W) -> Self {
        TeeReader { inner, copy }
    }

    /// Returns the writer.
    pub fn into_copy(self) -> W {
        self.copy
    }
}

impl<R: Read, W: Write> Read for TeeReader<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// A writer that only hashes and counts.
#[derive(Default)]
pub struct Digest256 {
    hasher: Sha256,
    size: u64,
}

impl Write for Digest256 {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hasher.update(buf);
        self.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Digest256 {
    /// Returns the byte count and hex SHA-256.
    pub fn finish(self) -> (u64, String) {
        (self.size, hex::encode(self.hasher.finalize()))
    }
}

/// Problem that keeps an archive entry from being recorded or restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct EntryProblem {
    /// The entry's path as stored in the archive.
    pub path: String,
    /// Description of the problem, in English.
    pub reason: String,
}

/// Returns the manifest kind of a tar entry type, or `None` for types a volume backup does not
/// carry (devices, FIFOs, sparse files).
fn kind_of(entry_type: EntryType) -> Option<&'static str> {
    match entry_type {
        EntryType::Regular | EntryType::Continuous => Some("file"),
        EntryType::Directory => Some("dir"),
        EntryType::Symlink => Some("symlink"),
        EntryType::Link => Some("hardlink"),
        _ => None,
    }
}

/// Normalizes an archive path: strips `./` and trailing slashes. Returns `""` for the archive
/// root (`.` or `./`).
pub fn normalize(raw: &str) -> String {
    let mut parts = Vec::new();
    for part in raw.split('/') {
        if part.is_empty() || part == "." {
            continue;
        }
        parts.push(part);
    }
    let joined = parts.join("/");
    if raw.starts_with('/') { format!("/{joined}") } else { joined }
}

/// Parses a tar stream to its end and returns its entries. Bytes after the end-of-archive
/// marker (tar's record padding) are read too, so that a [`TeeReader`] passes them all on.
///
/// # Errors
/// The stream cannot be read or is not a tar archive; entries of unsupported types are
/// returned as an [`io::ErrorKind::InvalidData`] error naming the entry.
pub fn scan<R: Read>(reader: R) -> io::Result<Vec<FileEntry>> {
    let mut archive = tar::Archive::new(reader);
    let mut files = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let header = entry.header();
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let path = normalize(&raw_path);
        let entry_type = header.entry_type();
        let mode = header.mode().unwrap_or(0);
        let Some(kind) = kind_of(entry_type) else {
            let problem = EntryProblem { path: raw_path, reason: format!("unsupported entry type {entry_type:?}") };
            return Err(io::Error::new(io::ErrorKind::InvalidData, problem));
        };
        let link = entry.link_name_bytes().map(|l| String::from_utf8_lossy(&l).into_owned());
        let (size, sha256) = if kind == "file" {
            let mut digest = Digest256::default();
            io::copy(&mut entry, &mut digest)?;
            let (size, sha256) = digest.finish();
            (size, Some(sha256))
        } else {
            (0, None)
        };
        if path.is_empty() && kind == "dir" {
            continue;
        }
        let link = if kind == "hardlink" { link.map(|l| normalize(&l)) } else { link };
        files.push(FileEntry { path, kind: kind.to_owned(), size, sha256, mode, link });
    }
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink())?;
    Ok(files)
}

/// Returns the problem with one archive path: absolute, or containing `..`.
fn path_problem(path: &str) -> Option<String> {
    if path.starts_with('/') {
        return Some("absolute path".to_owned());
    }
    if Path::new(path).components().any(|c| matches!(c, Component::ParentDir)) {
        return Some("path contains '..'".to_owned());
    }
    None
}

/// Resolves `target` relative to the directory of `link_path` without touching the file
/// system. Fails when it climbs above the archive root or, before its last component, passes
/// through one of the archive's own symbolic links (whose target the lexical walk cannot know).
fn resolve_inside(link_path: &str, target: &str, symlinks: &BTreeSet<String>) -> Result<String, String> {
    let mut parts: Vec<&str> = link_path.split('/').filter(|p| !p.is_empty()).collect();
    parts.pop();
    let components: Vec<&str> = target.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    for (index, part) in components.iter().enumerate() {
        if *part == ".." {
            if parts.pop().is_none() {
                return Err(format!("symbolic link to {target}, outside the target directory"));
            }
            continue;
        }
        parts.push(part);
        let prefix = parts.join("/");
        if index + 1 < components.len() && symlinks.contains(&prefix) {
            return Err(format!("symbolic link to {target} passes through the symbolic link {prefix}"));
        }
    }
    Ok(parts.join("/"))
}

/// Checks every entry that a restore would write and returns each one that would land outside
/// the target directory. These are absolute paths, `..` components, symbolic links whose target
/// leaves the directory, hard links to paths outside, and paths through a symbolic link of the
/// same archive. Unsupported entry types are reported too.
pub fn check_entries(files: &[FileEntry]) -> Vec<EntryProblem> {
    let mut problems = Vec::new();
    // Every symbolic link of the archive counts, whatever its position, because a restore into
    // a non-empty pod directory may meet links in any order.
    let symlinks: BTreeSet<String> = files.iter().filter(|f| f.kind == "symlink").map(|f| f.path.clone()).collect();
    let through_symlink = |path: &str, symlinks: &BTreeSet<String>| -> Option<String> {
        let mut prefix = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            if symlinks.contains(&prefix) {
                return Some(prefix.clone());
            }
        }
        None
    };
    for file in files {
        let problem = |reason: String| EntryProblem { path: file.path.clone(), reason };
        if let Some(reason) = path_problem(&file.path) {
            problems.push(problem(reason));
            continue;
        }
        if let Some(link) = through_symlink(&file.path, &symlinks) {
            problems.push(problem(format!("path passes through the symbolic link {link}")));
            continue;
        }
        match file.kind.as_str() {
            "file" | "dir" => {}
            "symlink" => {
                let target = file.link.clone().unwrap_or_default();
                if target.starts_with('/') {
                    problems.push(problem(format!("symbolic link to the absolute path {target}")));
                } else if let Err(reason) = resolve_inside(&file.path, &target, &symlinks) {
                    problems.push(problem(reason));
                }
            }
            "hardlink" => {
                let target = file.link.clone().unwrap_or_default();
                if let Some(reason) = path_problem(&target) {
                    problems.push(problem(format!("hard link to {target}: {reason}")));
                } else if let Some(link) = through_symlink(&format!("{target}/x"), &symlinks) {
                    problems.push(problem(format!("hard link to {target} passes through the symbolic link {link}")));
                }
            }
            other => problems.push(problem(format!("unsupported entry type {other}"))),
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: &str, link: Option<&str>) -> FileEntry {
        FileEntry { path: path.to_owned(), kind: kind.to_owned(), size: 0, sha256: None, mode: 0o644, link: link.map(str::to_owned) }
    }

    #[test]
    fn normalize_strips_dot_prefix() {
        assert_eq!(normalize("./a/b/"), "a/b");
        assert_eq!(normalize("./"), "");
        assert_eq!(normalize("/etc/passwd"), "/etc/passwd");
    }

    #[test]
    fn inside_links_pass() {
        let files = [entry("d", "dir", None), entry("d/f", "file", None), entry("d/l", "symlink", Some("../d/f")), entry("h", "hardlink", Some("d/f"))];
        assert!(check_entries(&files).is_empty());
    }

    #[test]
    fn escaping_entries_are_reported() {
        let cases = [
            entry("/etc/x", "file", None),
            entry("a/../../x", "file", None),
            entry("l1", "symlink", Some("/etc")),
            entry("l2", "symlink", Some("../outside")),
            entry("h", "hardlink", Some("../x")),
        ];
        for case in cases {
            assert_eq!(check_entries(std::slice::from_ref(&case)).len(), 1, "{case:?}");
        }
    }

    #[test]
    fn write_through_symlink_is_reported() {
        let files = [entry("l", "symlink", Some("sub")), entry("l/x", "file", None)];
        let problems = check_entries(&files);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "l/x");
    }

    #[test]
    fn link_chain_through_symlink_is_reported() {
        let files = [entry("x", "symlink", Some(".")), entry("a", "symlink", Some("x/../y"))];
        let problems = check_entries(&files);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, "a");
    }
}
