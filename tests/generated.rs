//! Files generated from the Rust sources and committed for other languages: each must equal what
//! the code generates now. `make generate` (this test with `LEADSCORE_BLESS=1`) rewrites them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::Path;

#[test]
fn committed_generated_files_are_fresh() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = [
        (
            "www/tracker/limits.js",
            leadscore::event::limits::js_module(),
        ),
        (
            "www/event.schema.json",
            leadscore::event::schema::json_schema(),
        ),
    ];
    let bless = std::env::var_os("LEADSCORE_BLESS").is_some();
    let mut stale = Vec::new();
    for (rel, want) in &files {
        let path = root.join(rel);
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have != *want {
            if bless {
                std::fs::write(&path, want).unwrap();
            } else {
                stale.push(*rel);
            }
        }
    }
    assert!(
        stale.is_empty(),
        "stale generated files: {stale:?}; run `make generate` and commit the result"
    );
}
