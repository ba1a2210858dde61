//! What the integration modules share: the repository root, the `leadscore` runner, scratch
//! directories.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The repository root; the CLI runs there, so paths in arguments may be relative to it.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The default bundle, `models/default`.
pub fn default_dir() -> PathBuf {
    root().join("models/default")
}

/// A fresh, empty directory `<target tmp>/<area>/<name>`.
pub fn scratch(area: &str, name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(area).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `leadscore args` from the root with `stdin` as its input.
pub fn run(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_leadscore"))
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A run that fails on its arguments exits without reading its input: a broken pipe here is
    // that race, not an error (the tests judge the exit status and the output).
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe,
            "writing stdin: {e}"
        );
    }
    child.wait_with_output().unwrap()
}

/// Runs `leadscore args` from the root with no input.
pub fn leadscore(args: &[&str]) -> Output {
    run(args, "")
}

/// Output bytes as text (lossy: a test prints what it got).
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
