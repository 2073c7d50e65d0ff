//! The inventory file as lines of text, and the edits caasctl makes to it.
//!
//! Edits work on whole lines and never reformat the lines they do not touch, so comments, blank
//! lines, the order of sections and the operator's quoting survive every change. Saving copies the
//! previous file aside (`FILE.caasctl-<UTC time>`) and replaces the file through `FILE.part`, an
//! fsync and a rename, so a crash leaves either the old or the new inventory, never half of one.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use regex::Regex;

use crate::error::InventoryError;

/// What a section holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SectionKind {
    /// `[group]`: host lines.
    Hosts,
    /// `[group:vars]`: `key=value` lines.
    Vars,
    /// `[group:children]`: group names.
    Children,
}

impl SectionKind {
    /// Returns the section header for `group`, such as `[nodes:children]`.
    pub fn header(self, group: &str) -> String {
        match self {
            SectionKind::Hosts => format!("[{group}]"),
            SectionKind::Vars => format!("[{group}:vars]"),
            SectionKind::Children => format!("[{group}:children]"),
        }
    }
}

/// How one line reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineKind {
    /// Empty or only whitespace.
    Blank,
    /// Starts with `#` or `;` after leading whitespace.
    Comment,
    /// A section header.
    Header {
        /// Group name.
        group: String,
        /// Section type.
        kind: SectionKind,
    },
    /// A host, variable or child group line, depending on the section.
    Entry,
}

/// A run of lines under one header; the lines before the first header form an implicit
/// `[ungrouped]` section without a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Group name.
    pub group: String,
    /// Section type.
    pub kind: SectionKind,
    /// Index of the header line, `None` for the implicit first section.
    pub header: Option<usize>,
    /// Index of the first line after the header.
    pub start: usize,
    /// Index one past the last line of the section.
    pub end: usize,
}

/// An inventory file held as its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    origin: String,
    lines: Vec<String>,
    trailing_newline: bool,
    kinds: Vec<LineKind>,
}

fn section_regex() -> &'static Regex {
    static SECTION: OnceLock<Regex> = OnceLock::new();
    SECTION.get_or_init(|| Regex::new(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$").expect("valid regex"))
}

impl Document {
    /// Parses inventory text; `origin` names it in errors (a path, or `<memory>`).
    ///
    /// # Errors
    /// [`InventoryError::Syntax`] for a malformed or unknown section header. Host, variable and
    /// child lines are checked by [`crate::Inventory::from_document`].
    pub fn parse(text: &str, origin: &str) -> Result<Document, InventoryError> {
        let trailing_newline = text.ends_with('\n');
        let body = text.strip_suffix('\n').unwrap_or(text);
        let lines: Vec<String> = if text.is_empty() { Vec::new() } else { body.split('\n').map(str::to_owned).collect() };
        let mut document = Document { origin: origin.to_owned(), lines, trailing_newline, kinds: Vec::new() };
        document.classify()?;
        Ok(document)
    }

    /// Reads and parses an inventory file.
    ///
    /// # Errors
    /// [`InventoryError::Io`] when the file cannot be read, [`InventoryError::NotUtf8`], and the
    /// errors of [`Document::parse`].
    pub fn read(path: &Path) -> Result<Document, InventoryError> {
        let bytes = fs::read(path).map_err(|source| InventoryError::Io { action: "read", path: path.to_owned(), source })?;
        let text = String::from_utf8(bytes).map_err(|_| InventoryError::NotUtf8 { path: path.to_owned() })?;
        Document::parse(&text, &path.display().to_string())
    }

    fn classify(&mut self) -> Result<(), InventoryError> {
        let mut kinds = Vec::with_capacity(self.lines.len());
        for (index, line) in self.lines.iter().enumerate() {
            kinds.push(classify_line(line).map_err(|reason| InventoryError::Syntax {
                origin: self.origin.clone(),
                line: index + 1,
                reason,
            })?);
        }
        self.kinds = kinds;
        Ok(())
    }

    /// Returns the name used in error messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Returns the lines, without their line ends.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// Returns how each line reads.
    pub fn kinds(&self) -> &[LineKind] {
        &self.kinds
    }

    /// Returns the whole text, byte for byte as read when nothing was edited.
    pub fn text(&self) -> String {
        let mut text = self.lines.join("\n");
        if self.trailing_newline && !self.lines.is_empty() {
            text.push('\n');
        }
        text
    }

    /// Returns the sections in file order, the implicit `ungrouped` one first when it has lines.
    pub fn sections(&self) -> Vec<Section> {
        let mut sections = Vec::new();
        let mut current = Section { group: "ungrouped".to_owned(), kind: SectionKind::Hosts, header: None, start: 0, end: 0 };
        for (index, kind) in self.kinds.iter().enumerate() {
            if let LineKind::Header { group, kind } = kind {
                current.end = index;
                if current.header.is_some() || current.end > current.start {
                    sections.push(current);
                }
                current = Section { group: group.clone(), kind: *kind, header: Some(index), start: index + 1, end: index + 1 };
            }
        }
        current.end = self.lines.len();
        if current.header.is_some() || current.end > current.start {
            sections.push(current);
        }
        sections
    }

    /// Returns the entry lines of every `[group]`-type section of `group`, as line indexes.
    pub fn entries(&self, group: &str, kind: SectionKind) -> Vec<usize> {
        self.sections()
            .into_iter()
            .filter(|section| section.group == group && section.kind == kind)
            .flat_map(|section| (section.start..section.end).filter(|i| self.kinds[*i] == LineKind::Entry).collect::<Vec<_>>())
            .collect()
    }

    /// Returns true when a section header `[group...]` of this kind exists.
    pub fn has_section(&self, group: &str, kind: SectionKind) -> bool {
        self.sections().iter().any(|s| s.group == group && s.kind == kind && s.header.is_some())
    }

    fn line_end(&self) -> &'static str {
        // Files written on Windows keep their CR LF line ends on new lines too.
        if self.lines.first().is_some_and(|line| line.ends_with('\r')) {
            "\r"
        } else {
            ""
        }
    }

    fn insert(&mut self, index: usize, text: &str) {
        let line = format!("{text}{}", self.line_end());
        let kind = classify_line(&line).expect("lines inserted by caasctl are well-formed");
        self.lines.insert(index, line);
        self.kinds.insert(index, kind);
        if self.lines.len() == 1 {
            self.trailing_newline = true;
        }
    }

    /// Removes line `index`.
    pub fn remove_line(&mut self, index: usize) -> String {
        self.kinds.remove(index);
        self.lines.remove(index)
    }

    /// Appends `entry` to the last section `[group]` of `kind`, after its last entry line so
    /// that the comments and blank lines ahead of the next section stay where they are. A missing
    /// section is created: after the last section of `after_group` when given and present, else
    /// at the end of the file.
    pub fn add_entry(&mut self, group: &str, kind: SectionKind, entry: &str, after_group: Option<&str>) {
        let section = self.sections().into_iter().filter(|s| s.group == group && s.kind == kind && s.header.is_some()).last();
        match section {
            Some(section) => {
                let at = self.last_entry_end(&section);
                self.insert(at, entry);
            }
            None => {
                let anchor = after_group.and_then(|anchor| self.sections().into_iter().filter(|s| s.group == anchor && s.header.is_some()).last());
                let at = match anchor {
                    Some(anchor) => self.last_entry_end(&anchor),
                    None => self.lines.len(),
                };
                let mut new_lines = Vec::new();
                if at > 0 && self.kinds[at - 1] != LineKind::Blank {
                    new_lines.push(String::new());
                }
                new_lines.push(kind.header(group));
                new_lines.push(entry.to_owned());
                if at < self.lines.len() && self.kinds[at] != LineKind::Blank {
                    new_lines.push(String::new());
                }
                for (offset, line) in new_lines.iter().enumerate() {
                    self.insert(at + offset, line);
                }
            }
        }
    }

    /// Returns the index just past the last entry of `section`, or past its header when it has
    /// no entry.
    fn last_entry_end(&self, section: &Section) -> usize {
        (section.start..section.end)
            .rev()
            .find(|i| self.kinds[*i] == LineKind::Entry)
            .map(|i| i + 1)
            .unwrap_or(section.start)
    }

    /// Writes the document to `path`: the current file is first copied aside, then replaced
    /// through `path.part`, fsync and rename. Returns the path of the copy, if there was a file.
    ///
    /// # Errors
    /// [`InventoryError::Io`] naming the step that failed; the original file is then untouched.
    pub fn save(&self, path: &Path) -> Result<Option<PathBuf>, InventoryError> {
        // A symlinked inventory (such as /etc/ansible/hosts) keeps its link: the target is replaced.
        let resolved = fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        let path = resolved.as_path();
        let _span = tracing::info_span!("inventory.save", path = %path.display()).entered();
        let io = |action: &'static str, at: &Path| {
            let at = at.to_owned();
            move |source| InventoryError::Io { action, path: at, source }
        };
        let backup = if path.exists() {
            let backup = backup_path(path);
            fs::copy(path, &backup).map_err(io("copy aside", path))?;
            Some(backup)
        } else {
            None
        };

        let mut part = path.as_os_str().to_owned();
        part.push(".part");
        let part = PathBuf::from(part);
        let mut file = fs::File::create(&part).map_err(io("create", &part))?;
        file.write_all(self.text().as_bytes()).map_err(io("write", &part))?;
        if let Ok(metadata) = fs::metadata(path) {
            file.set_permissions(metadata.permissions()).map_err(io("set permissions of", &part))?;
        }
        file.sync_all().map_err(io("fsync", &part))?;
        drop(file);
        fs::rename(&part, path).map_err(io("rename", &part))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(dir) = fs::File::open(dir) {
                let _ = dir.sync_all();
            }
        }
        tracing::info!(backup = ?backup, "inventory written");
        Ok(backup)
    }
}

/// Returns a free `FILE.caasctl-YYYYMMDDTHHMMSS.mmmZ` name beside `path`.
fn backup_path(path: &Path) -> PathBuf {
    let now = time::OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.millisecond()
    );
    let base = format!("{}.caasctl-{stamp}", path.display());
    let mut candidate = PathBuf::from(&base);
    let mut counter = 1;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{base}-{counter}"));
        counter += 1;
    }
    candidate
}

/// Classifies one line the way ansible's INI plugin reads it.
fn classify_line(line: &str) -> Result<LineKind, String> {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Ok(LineKind::Blank);
    }
    if trimmed.starts_with('#') || trimmed.starts_with(';') {
        return Ok(LineKind::Comment);
    }
    if let Some(captures) = section_regex().captures(trimmed) {
        let group = captures[1].to_owned();
        let kind = match captures.get(2).map(|m| m.as_str()) {
            None | Some("hosts") => SectionKind::Hosts,
            Some("vars") => SectionKind::Vars,
            Some("children") => SectionKind::Children,
            Some(other) => return Err(format!("Section [{group}:{other}] has unknown type: {other}")),
        };
        return Ok(LineKind::Header { group, kind });
    }
    if trimmed.starts_with('[') && trimmed.ends_with(']') {
        return Err(format!(
            "Invalid section entry: '{trimmed}'. Please make sure that there are no spaces in the section entry, and that there are no other invalid characters"
        ));
    }
    Ok(LineKind::Entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_byte_for_byte() {
        for text in ["", "a\n", "a", "# c\r\n[g]\r\nh1\r\n", "\n\n[g]\nh # x\n\n"] {
            assert_eq!(Document::parse(text, "t").unwrap().text(), text);
        }
    }

    #[test]
    fn add_entry_after_last_entry_keeps_comments() {
        let mut doc = Document::parse("[OSEv3:children]\nmasters\nnodes\n\n# etcd\n[etcd]\ne1\n", "t").unwrap();
        doc.add_entry("OSEv3", SectionKind::Children, "new_nodes", None);
        assert_eq!(doc.text(), "[OSEv3:children]\nmasters\nnodes\nnew_nodes\n\n# etcd\n[etcd]\ne1\n");
    }

    #[test]
    fn add_entry_creates_section_after_anchor() {
        let mut doc = Document::parse("[nodes]\nn1\n\n[etcd]\ne1\n", "t").unwrap();
        doc.add_entry("new_nodes", SectionKind::Hosts, "n2 a=1", Some("nodes"));
        assert_eq!(doc.text(), "[nodes]\nn1\n\n[new_nodes]\nn2 a=1\n\n[etcd]\ne1\n");
        let mut doc = Document::parse("[nodes]\nn1", "t").unwrap();
        doc.add_entry("new_etcd", SectionKind::Hosts, "e9", None);
        assert_eq!(doc.text(), "[nodes]\nn1\n\n[new_etcd]\ne9");
    }

    #[test]
    fn header_errors_name_line() {
        let error = Document::parse("[g]\nh\n[bad group]\n", "inv").unwrap_err();
        assert_eq!(error.line(), Some(3));
        let error = Document::parse("[g:hostz]\n", "inv").unwrap_err();
        assert!(error.to_string().contains("unknown type"), "{error}");
    }
}
