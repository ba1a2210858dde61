//! Files generated from the Rust sources and committed for other languages: each must equal what
//! the code generates now. `make generate` (this test with `LEADSCORE_BLESS=1`) rewrites them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

#[test]
fn committed_generated_files_are_fresh() {
    let root = &crate::support::root();
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
    // The OpenAPI document is hand-written but for one line: the error codes.
    let openapi = root.join("www/openapi.yaml");
    let text = std::fs::read_to_string(&openapi).unwrap();
    let marker = "# generated from src/error_code.rs";
    let want_line = leadscore::error_code::ErrorCode::openapi_enum_line();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let at = lines
        .iter()
        .position(|l| l.ends_with(marker))
        .expect("www/openapi.yaml lists the error codes on a line ending with the marker");
    let openapi_stale = lines[at] != want_line;
    if openapi_stale && bless {
        lines[at] = want_line;
        std::fs::write(&openapi, lines.join("\n") + "\n").unwrap();
    }
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
    if openapi_stale && !bless {
        stale.push("www/openapi.yaml (error codes)");
    }
    assert!(
        stale.is_empty(),
        "stale generated files: {stale:?}; run `make generate` and commit the result"
    );
}

/// The API document is hand-written, so this keeps it honest about the routes: every path the
/// worker's router answers (`allowed_methods` in src/worker/mod.rs) has an entry in
/// www/openapi.yaml (a prefix route such as `/v1/export/` one starting with it).
#[test]
fn openapi_documents_every_route() {
    let root = &crate::support::root();
    let router = std::fs::read_to_string(root.join("src/worker/mod.rs")).unwrap();
    let start = router
        .find("fn allowed_methods")
        .expect("the router's method table");
    let table = &router[start..start + router[start..].find("\n}\n").unwrap()];
    let openapi = std::fs::read_to_string(root.join("www/openapi.yaml")).unwrap();
    let documented: Vec<&str> = openapi
        .lines()
        .filter_map(|l| l.strip_prefix("  /")?.strip_suffix(':'))
        .collect();
    let routes: Vec<&str> = table
        .split('"')
        .skip(1)
        .step_by(2)
        .filter_map(|s| s.strip_prefix('/'))
        .collect();
    assert!(routes.len() >= 10, "found only {routes:?} in the router");
    let missing: Vec<&&str> = routes
        .iter()
        .filter(|r| {
            !documented
                .iter()
                .any(|d| d == *r || (r.ends_with('/') && d.starts_with(*r)))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "routes missing from www/openapi.yaml: {missing:?}"
    );
}
