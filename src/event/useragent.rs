//! Operating system, browser and device families from a user agent string.
//!
//! Deliberately small first-match rules (documented in `models/README.md`) rather than a full UA
//! database: the families are model inputs, so they must be stable and cheap in wasm.

/// OS family names, indexed by the code stored in visitor state.
pub const OS: [&str; 8] = [
    "other", "windows", "macos", "ios", "android", "linux", "chromeos", "freebsd",
];
/// Browser family names, indexed by the code stored in visitor state.
pub const BROWSERS: [&str; 13] = [
    "other",
    "chrome",
    "safari",
    "firefox",
    "edge",
    "opera",
    "samsung",
    "ie",
    "ucbrowser",
    "yandex",
    "vivaldi",
    "silk",
    "facebook_app",
];
/// Device family names, indexed by the code stored in visitor state.
pub const DEVICES: [&str; 3] = ["desktop", "mobile", "tablet"];

fn idx(table: &[&str], name: &str) -> u8 {
    table.iter().position(|x| *x == name).unwrap_or(0) as u8
}

/// Families of a user agent: (os, browser, device) codes.
pub fn parse(ua: &str) -> (u8, u8, u8) {
    let has = |s: &str| ua.contains(s);
    let os = if has("iPhone") || has("iPad") || has("iPod") {
        "ios"
    } else if has("Android") {
        "android"
    } else if has("Windows NT") {
        "windows"
    } else if has("CrOS") {
        "chromeos"
    } else if has("Macintosh") || has("Mac OS X") {
        "macos"
    } else if has("FreeBSD") {
        "freebsd"
    } else if has("Linux") {
        "linux"
    } else {
        "other"
    };
    let browser = if has("FBAN") || has("FBAV") {
        "facebook_app"
    } else if has("SamsungBrowser") {
        "samsung"
    } else if has("UCBrowser") {
        "ucbrowser"
    } else if has("YaBrowser") {
        "yandex"
    } else if has("Vivaldi") {
        "vivaldi"
    } else if has("Silk/") {
        "silk"
    } else if has("OPR/") || has("Opera") {
        "opera"
    } else if has("Edg/") || has("Edge/") || has("EdgA/") || has("EdgiOS/") {
        "edge"
    } else if has("MSIE") || has("Trident/") {
        "ie"
    } else if has("Firefox/") || has("FxiOS/") {
        "firefox"
    } else if has("Chrome/") || has("CriOS/") || has("Chromium/") {
        "chrome"
    } else if has("Safari/") {
        "safari"
    } else {
        "other"
    };
    let device = if has("iPad") || has("Tablet") || (has("Android") && !has("Mobile")) {
        "tablet"
    } else if has("Mobi") || has("iPhone") || has("Android") {
        "mobile"
    } else {
        "desktop"
    };
    (idx(&OS, os), idx(&BROWSERS, browser), idx(&DEVICES, device))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(ua: &str) -> (&'static str, &'static str, &'static str) {
        let (o, b, d) = parse(ua);
        (OS[o as usize], BROWSERS[b as usize], DEVICES[d as usize])
    }

    #[test]
    fn common_agents() {
        let chrome_win = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
        assert_eq!(names(chrome_win), ("windows", "chrome", "desktop"));
        let edge = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0";
        assert_eq!(names(edge).1, "edge");
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
        assert_eq!(names(iphone), ("ios", "safari", "mobile"));
        let android = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36";
        assert_eq!(names(android), ("android", "chrome", "mobile"));
        let tab = "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Safari/537.36";
        assert_eq!(names(tab), ("android", "samsung", "tablet"));
        let ff = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
        assert_eq!(names(ff), ("linux", "firefox", "desktop"));
        assert_eq!(names("curl/8.0"), ("other", "other", "desktop"));
    }
}
