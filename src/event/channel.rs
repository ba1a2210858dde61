//! Traffic channel of a session's landing page, from UTM parameters and the referrer.
//!
//! The rules are documented in `models/README.md` ("Traffic channel"); the training converter produces
//! landing pages that these rules map back to the dataset's traffic types, so change both together.

use crate::event::{query_param, url_host};

/// Channel names, indexed by the code stored in visitor state.
pub const CHANNELS: [&str; 20] = [
    "direct",
    "organic_google",
    "organic_bing",
    "organic_other",
    "paid_search",
    "paid_social",
    "display",
    "email",
    "affiliate",
    "social_facebook",
    "social_linkedin",
    "social_twitter",
    "social_other",
    "video",
    "referral",
    "sms",
    "push",
    "partner",
    "ai_assistant",
    "other_campaign",
];

fn index(name: &str) -> u8 {
    CHANNELS.iter().position(|c| *c == name).unwrap_or(0) as u8
}

/// Classifies a landing page: `url` (with its query) and `referrer`, both optional.
pub fn classify(url: Option<&str>, referrer: Option<&str>) -> u8 {
    if let Some(medium) = url.and_then(|u| query_param(u, "utm_medium")) {
        let m = medium.to_ascii_lowercase();
        let name = match m.as_str() {
            "cpc" | "ppc" | "paidsearch" | "sem" => "paid_search",
            "paid_social" | "paidsocial" => "paid_social",
            "display" | "banner" | "cpm" => "display",
            "email" | "newsletter" => "email",
            "affiliate" => "affiliate",
            "sms" => "sms",
            "push" => "push",
            "partner" => "partner",
            _ => "other_campaign",
        };
        return index(name);
    }
    let Some(host) = referrer.and_then(url_host) else {
        return index("direct");
    };
    let host = normalize(host);
    let page_host = url.and_then(url_host).map(normalize);
    if page_host.as_deref() == Some(host.as_str()) {
        return index("direct");
    }
    index(by_host(&host))
}

fn normalize(host: &str) -> String {
    let h = host.to_ascii_lowercase();
    for p in ["www.", "m.", "l."] {
        if let Some(rest) = h.strip_prefix(p) {
            return rest.to_string();
        }
    }
    h
}

fn is(host: &str, domain: &str) -> bool {
    host == domain || host.ends_with(&format!(".{domain}"))
}

fn by_host(h: &str) -> &'static str {
    let any = |ds: &[&str]| ds.iter().any(|d| is(h, d));
    if any(&[
        "chatgpt.com",
        "perplexity.ai",
        "gemini.google.com",
        "copilot.microsoft.com",
    ]) {
        "ai_assistant"
    } else if h.starts_with("google.") || h.contains(".google.") {
        "organic_google"
    } else if any(&["bing.com"]) {
        "organic_bing"
    } else if any(&[
        "duckduckgo.com",
        "search.yahoo.com",
        "baidu.com",
        "ecosia.org",
    ]) || h.starts_with("yandex.")
    {
        "organic_other"
    } else if any(&["facebook.com"]) {
        "social_facebook"
    } else if any(&["linkedin.com", "lnkd.in"]) {
        "social_linkedin"
    } else if any(&["t.co", "twitter.com", "x.com"]) {
        "social_twitter"
    } else if any(&["reddit.com", "instagram.com", "pinterest.com", "tiktok.com"]) {
        "social_other"
    } else if any(&["youtube.com", "vimeo.com"]) {
        "video"
    } else {
        "referral"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(url: &str, r: Option<&str>) -> &'static str {
        CHANNELS[classify(Some(url), r) as usize]
    }

    #[test]
    fn utm_wins_over_referrer() {
        assert_eq!(
            name(
                "https://s.example/?utm_medium=CPC",
                Some("https://www.google.com/")
            ),
            "paid_search"
        );
        assert_eq!(
            name("https://s.example/?a=1&utm_medium=newsletter", None),
            "email"
        );
        assert_eq!(
            name("https://s.example/?utm_medium=qrcode", None),
            "other_campaign"
        );
    }

    #[test]
    fn referrer_hosts() {
        let u = "https://s.example/p";
        assert_eq!(name(u, None), "direct");
        assert_eq!(name(u, Some("https://s.example/other")), "direct");
        assert_eq!(name(u, Some("https://www.google.co.uk/")), "organic_google");
        assert_eq!(
            name(u, Some("https://gemini.google.com/app")),
            "ai_assistant"
        );
        assert_eq!(name(u, Some("https://l.facebook.com/")), "social_facebook");
        assert_eq!(name(u, Some("https://t.co/abc")), "social_twitter");
        assert_eq!(name(u, Some("https://yandex.ru/")), "organic_other");
        assert_eq!(name(u, Some("https://news.example.org/a")), "referral");
        assert_eq!(name(u, Some("https://notx.com/")), "referral");
    }
}
