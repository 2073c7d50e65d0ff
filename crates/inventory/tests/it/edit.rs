//! Edits keep every untouched byte, and saving copies the old file aside first.

use caasctl_inventory::{Document, Inventory, SectionKind};

const BEFORE: &str = "\
# cluster inventory\r
[OSEv3:children]\r
masters\r
nodes   # compute and infra\r
\r
[nodes]\r
master[1:3].example.com\r
node1.example.com openshift_node_group_name='node-config-compute'\r
; trailing comment of nodes\r
\r
[etcd]\r
etcd1.example.com\r
[masters]\r
master[1:3].example.com\r
";

#[test]
fn edit_keeps_crlf_comments_and_order() {
    let mut document = Document::parse(BEFORE, "inv").expect("parses");
    document.add_entry("OSEv3", SectionKind::Children, "new_nodes", None);
    document.add_entry("new_nodes", SectionKind::Hosts, "node2.example.com openshift_node_group_name='node-config-compute'", Some("nodes"));
    let expected = "\
# cluster inventory\r
[OSEv3:children]\r
masters\r
nodes   # compute and infra\r
new_nodes\r
\r
[nodes]\r
master[1:3].example.com\r
node1.example.com openshift_node_group_name='node-config-compute'\r
\r
[new_nodes]\r
node2.example.com openshift_node_group_name='node-config-compute'\r
\r
; trailing comment of nodes\r
\r
[etcd]\r
etcd1.example.com\r
[masters]\r
master[1:3].example.com\r
";
    assert_eq!(document.text(), expected);
    let inventory = Inventory::from_document(&Document::parse(&document.text(), "inv").unwrap()).expect("still valid");
    assert_eq!(inventory.group("new_nodes").unwrap().hosts, ["node2.example.com"]);
}

#[test]
fn save_copies_aside_and_replaces() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("hosts");
    std::fs::write(&path, BEFORE).unwrap();
    let mut document = Document::read(&path).unwrap();
    document.add_entry("etcd", SectionKind::Hosts, "etcd2.example.com", None);
    let backup = document.save(&path).unwrap().expect("a copy was made");
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), BEFORE);
    assert!(backup.file_name().unwrap().to_string_lossy().starts_with("hosts.caasctl-"), "{}", backup.display());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), BEFORE.replace("etcd1.example.com\r\n", "etcd1.example.com\r\netcd2.example.com\r\n"));
    assert!(!dir.path().join("hosts.part").exists());
}

#[test]
fn save_through_symlink_keeps_link() {
    let dir = tempfile::tempdir().expect("temp dir");
    let target = dir.path().join("real-hosts");
    let link = dir.path().join("hosts");
    std::fs::write(&target, "[g]\nh1\n").unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let mut document = Document::read(&link).unwrap();
    document.add_entry("g", SectionKind::Hosts, "h2", None);
    document.save(&link).unwrap();
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link was replaced by a file");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "[g]\nh1\nh2\n");
}
