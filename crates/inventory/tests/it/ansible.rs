//! Every fixture inventory is read by caasctl and by `ansible-inventory -i FILE --list` (Debian's
//! ansible-core); the two JSON texts must be identical byte for byte.

use std::path::{Path, PathBuf};
use std::process::Command;

use caasctl_inventory::{Document, Inventory, InventoryError};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn ansible_inventory_available() -> bool {
    caasctl_testing::require(
        Command::new("ansible-inventory").arg("--version").output().is_ok_and(|o| o.status.success()),
        "ansible-inventory (Debian package ansible-core)",
    )
}

/// Runs ansible-inventory in an empty directory, so no ansible.cfg or vars directory of the
/// working tree changes its view.
fn ansible_list(path: &Path) -> (bool, String, String) {
    let home = tempfile::tempdir().expect("temp dir");
    let output = Command::new("ansible-inventory")
        .arg("-i")
        .arg(path)
        .arg("--list")
        .current_dir(home.path())
        .env("ANSIBLE_LOCAL_TEMP", home.path())
        .env("ANSIBLE_INVENTORY_UNPARSED_FAILED", "true")
        .env("ANSIBLE_NOCOLOR", "1")
        .output()
        .expect("ansible-inventory runs");
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

fn ours(path: &Path) -> Result<String, InventoryError> {
    let document = Document::read(path)?;
    let inventory = Inventory::from_document(&document)?;
    Ok(format!("{}\n", inventory.to_ansible_list_json()))
}

#[test]
fn vars_directories_match_ansible_inventory() {
    if !ansible_inventory_available() {
        return;
    }
    // group_vars/ contains a plain file, a .yaml file and a directory of .yml and .json files, and
    // host_vars/ a file without extension; each overrides the inventory file's values.
    let file = fixtures().join("vars-dirs/hosts.ini");
    let (ok, expected, stderr) = ansible_list(&file);
    assert!(ok, "ansible-inventory failed: {stderr}");
    let actual = ours(&file).expect("caasctl reads the inventory");
    assert_eq!(actual, expected);
    assert!(actual.contains("\"openshift_node_group_name\": \"node-config-compute\""), "{actual}");
}

#[test]
fn corpus_matches_ansible_inventory() {
    if !ansible_inventory_available() {
        return;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("fixtures dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "ini"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "corpus has {} files", files.len());
    for file in files {
        let (ok, expected, stderr) = ansible_list(&file);
        assert!(ok, "ansible-inventory failed on {}: {stderr}", file.display());
        let actual = ours(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        if actual != expected {
            let out = std::env::temp_dir().join(format!("caasctl-{}.json", file.file_stem().unwrap().to_string_lossy()));
            std::fs::write(&out, &actual).ok();
            panic!("{} differs from ansible-inventory; ours is in {}\n--- ansible ---\n{expected}", file.display(), out.display());
        }
    }
}

#[test]
fn malformed_inventories_fail_in_both() {
    if !ansible_inventory_available() {
        return;
    }
    let cases: &[(&str, usize)] = &[
        ("[nodes]\nn1\nnode[01:100].example.com\n", 3),
        ("[nodes]\nnode[1:].example.com\n", 2),
        ("[nodes]\n\nnode[a:5]\n", 3),
        ("[nodes]\nnode[1:2:3:4]\n", 2),
        ("[g]\nh x='unclosed\n", 2),
        ("[g]\nh novalue\n", 2),
        ("[g:vars]\nnovalue\n[g]\nh\n", 2),
        ("[g:vars]\na=1\n", 1),
        ("[p:children]\nmissing\n", 2),
        ("[g]\nh\n[bad name]\n", 3),
        ("[g:hostz]\nh\n", 1),
    ];
    let dir = tempfile::tempdir().expect("temp dir");
    for (index, (text, line)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{index}.ini"));
        std::fs::write(&path, text).expect("write");
        let (ok, _, stderr) = ansible_list(&path);
        assert!(!ok, "ansible-inventory accepted case {index}: {text:?}");
        let error = ours(&path).expect_err(text);
        assert_eq!(error.line(), Some(*line), "case {index} {text:?}: {error}");
        // ansible's range errors name no line; its other parse errors must name the same one.
        if !matches!(error, InventoryError::InvalidRange { .. }) {
            assert!(stderr.contains(&format!(":{line}:")), "ansible names another line for case {index}: {stderr}");
        }
    }
}

#[test]
fn malformed_range_error_names_line() {
    let error = Inventory::parse("[nodes]\nnode1\n\nnode[01:100].example.com\n", "hosts.ini").unwrap_err();
    assert!(matches!(error, InventoryError::InvalidRange { line: 4, .. }), "{error:?}");
    assert!(error.to_string().starts_with("hosts.ini:4: invalid host range in \"node[01:100].example.com\""), "{error}");
}
