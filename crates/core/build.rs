//! Joins the catalogue files of each language (`locales/LANG/*.toml`, in file-name order) into one
//! file per language in OUT_DIR, so that each domain of caasctl keeps its messages in its own file.

use std::path::Path;

fn main() {
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    for lang in ["en", "zh-CN"] {
        let dir = Path::new("locales").join(lang);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("failed to read {}: {e}", dir.display()))
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
            .collect();
        files.sort();
        let mut joined = String::new();
        for file in files {
            println!("cargo:rerun-if-changed={}", file.display());
            joined.push_str(&std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("failed to read {}: {e}", file.display())));
            joined.push('\n');
        }
        std::fs::write(Path::new(&out_dir).join(format!("{lang}.toml")), joined).expect("write joined catalogue");
    }
}
