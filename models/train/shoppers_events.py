#!/usr/bin/env python3
"""Expand the Online Shoppers dataset into live events the leadscore engine turns back into its columns.

Every data row r (0-based) becomes one visitor ``shoppers-<r>`` whose last session reproduces the row:
page views per category, engaged seconds per category, mean page statistics, special day, weekend,
month, visitor type, OS / browser family and traffic channel. ``--out-tables`` writes the site tables
(the ``site`` object of card.json, see models/README.md) under which the engine maps those events back
to the row's values.

Deterministic: a fixed seed per row, no clock, no hash randomisation; the same CSV gives byte-identical
output. One engine rule is mirrored here, and only to choose dates: the special-day closeness
(``special_day`` below, src/site.rs), because a row's SpecialDay value must be found among the calendar's
dates before its events can be written; its parameters (the special days, peak and width) are read from
the default card template's site tables, not restated. Nothing else re-implements the engine's rules
(user-agent families, channels, sessions, page statistics): the Rust engine is the only implementation,
and ``cargo test --test integration parity::`` (part of ``make test``) feeds it these events and requires
every row's columns back, bit for bit — which also proves the mirror chose every date right.

    .venv/bin/python models/train/shoppers_events.py \
        --data ../shared/data/online_shoppers/online_shoppers_intention.csv \
        --out /tmp/shoppers.ndjson --out-tables /tmp/tables.json
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import os
import random
import sys
import time

import numpy as np

SEED = 20261123
HOST = "https://shop.example"
SESSION_TIMEOUT_MS = 30 * 60_000
YEARS = range(2015, 2028)
MONTHS = {"Jan": 1, "Feb": 2, "Mar": 3, "Apr": 4, "May": 5, "June": 6, "Jul": 7, "Aug": 8,
          "Sep": 9, "Oct": 10, "Nov": 11, "Dec": 12}
# The site's special days as the default card template declares them (the one copy of these numbers).
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "default.card.json"), encoding="utf-8") as _f:
    _SITE = json.load(_f)["site"]
SPECIAL_DAYS = _SITE["special_days"]
SPECIAL_PEAK, SPECIAL_WIDTH = _SITE["special_day_peak_days_before"], _SITE["special_day_width_days"]

# Dataset code of each live family / channel. Chosen from the dataset's OS x Browser co-occurrence so
# that frequent pairs are plausible devices (OS 1 pairs with Browser 1 -> iOS Safari, OS 3 with
# Browsers 2/3 -> Android Chrome/Samsung, OS 2 with 2/4/5/6/10 -> Windows Chrome/Edge/Firefox/...).
CODES = {
    "os": {"ios": 1, "windows": 2, "android": 3, "macos": 4, "other": 5, "chromeos": 6,
           "freebsd": 7, "linux": 8},
    "browser": {"safari": 1, "chrome": 2, "samsung": 3, "edge": 4, "firefox": 5, "opera": 6,
                "yandex": 7, "facebook_app": 8, "silk": 9, "vivaldi": 10, "ie": 11,
                "ucbrowser": 12, "other": 13},
    "channel": {"direct": 1, "organic_google": 2, "paid_search": 3, "referral": 4,
                "organic_bing": 5, "social_facebook": 6, "affiliate": 7, "email": 8,
                "social_twitter": 9, "organic_other": 10, "paid_social": 11, "sms": 12,
                "display": 13, "social_linkedin": 14, "video": 15, "partner": 16, "push": 17,
                "social_other": 18, "other_campaign": 19, "ai_assistant": 20},
}
CATEGORIES = [("administrative", "Administrative", "/account"),
              ("informational", "Informational", "/help"),
              ("product_related", "ProductRelated", "/products")]
STAT_COLUMNS = [("bounce_rate", "BounceRates"), ("exit_rate", "ExitRates"), ("page_value", "PageValues")]
LANDING_PREFIX = "/landing"  # tagged by default_tags ["other"]; used by rows with no category page


def site_rules() -> list[dict]:
    return [{"prefix": prefix, "tags": [tag]} for tag, _, prefix in CATEGORIES]


def f32(x: float) -> np.float32:
    return np.float32(x)


# ---------------------------------------------------------------------------------------------------
# Calendar: mirrors src/site.rs special_day, only to choose dates (the parity test proves each choice)

def special_date(sd: dict, year: int) -> dt.date:
    if "day" in sd:
        return dt.date(year, sd["month"], sd["day"])
    first = dt.date(year, sd["month"], 1)
    offset = (sd["weekday"] - first.isoweekday()) % 7
    return first + dt.timedelta(days=offset + 7 * (sd["nth"] - 1))


def special_day(date: dt.date) -> float:
    best = 0.0
    for sd in SPECIAL_DAYS:
        for y in (date.year, date.year + 1):
            before = float((special_date(sd, y) - date).days)
            best = max(best, 1.0 - abs(before - SPECIAL_PEAK) / SPECIAL_WIDTH)
    return best


def date_candidates() -> dict:
    """(month, float32 special day, weekend) -> every date of YEARS with those values."""
    out: dict = {}
    for y in YEARS:
        d = dt.date(y, 1, 1)
        while d.year == y:
            key = (d.month, f32(special_day(d)), d.isoweekday() >= 6)
            out.setdefault(key, []).append(d)
            d += dt.timedelta(days=1)
    return out


EPOCH = dt.date(1970, 1, 1)


def epoch_ms(d: dt.date) -> int:
    return (d - EPOCH).days * 86_400_000


# ---------------------------------------------------------------------------------------------------
# User agents: realistic strings that the first-match rules of models/README.md map to (os, browser).

OS_PLATFORMS = {
    "windows": ["Windows NT 10.0; Win64; x64", "Windows NT 10.0; WOW64", "Windows NT 6.1; Win64; x64"],
    "macos": ["Macintosh; Intel Mac OS X 10_15_7", "Macintosh; Intel Mac OS X 14_5"],
    "ios": ["iPhone; CPU iPhone OS 17_5 like Mac OS X", "iPhone; CPU iPhone OS 16_7 like Mac OS X",
            "iPad; CPU OS 17_4 like Mac OS X"],
    "android": ["Linux; Android 14; Pixel 8", "Linux; Android 13; SM-S911B", "Linux; Android 12; moto g(60)"],
    "chromeos": ["X11; CrOS x86_64 15633.69.0"],
    "freebsd": ["X11; FreeBSD amd64"],
    "linux": ["X11; Linux x86_64", "X11; Ubuntu; Linux x86_64"],
    "other": ["Fuchsia"],
}
CHROME_V = ["124.0.0.0", "126.0.0.0", "131.0.0.0"]
FIREFOX_V = ["115.0", "128.0", "133.0"]
WK = "AppleWebKit/537.36 (KHTML, like Gecko)"
WK_APPLE = "AppleWebKit/605.1.15 (KHTML, like Gecko)"


def _chromium(plat: str, os_: str, v: str, extra: str = "", mid: str = "") -> str:
    mobile = "Mobile " if os_ == "android" and "SM-X" not in plat else ""
    tail = f" {extra}" if extra else ""
    return f"Mozilla/5.0 ({plat}) {WK} {mid}Chrome/{v} {mobile}Safari/537.36{tail}"


def make_ua(os_: str, browser: str, rng: random.Random) -> str:
    plat = rng.choice(OS_PLATFORMS[os_])
    cv = rng.choice(CHROME_V)
    fv = rng.choice(FIREFOX_V)
    ios = os_ == "ios"
    if browser == "chrome":
        if ios:
            return f"Mozilla/5.0 ({plat}) {WK_APPLE} CriOS/{cv[:3]}.0.6478.54 Mobile/15E148 Safari/604.1"
        return _chromium(plat, os_, cv)
    if browser == "safari":
        if ios:
            return f"Mozilla/5.0 ({plat}) {WK_APPLE} Version/17.5 Mobile/15E148 Safari/604.1"
        if os_ == "macos":
            return f"Mozilla/5.0 ({plat}) {WK_APPLE} Version/17.5 Safari/605.1.15"
        if os_ == "windows":  # Safari 5.1.7, the last Windows release
            return f"Mozilla/5.0 ({plat}) AppleWebKit/534.57.2 (KHTML, like Gecko) Version/5.1.7 Safari/534.57.2"
        if os_ == "android":  # the pre-Chrome stock browser
            return ("Mozilla/5.0 (Linux; U; Android 4.4.2; en-us; GT-I9505 Build/KOT49H) AppleWebKit/534.30 "
                    "(KHTML, like Gecko) Version/4.0 Mobile Safari/534.30")
        if os_ == "other":  # PlayStation 5
            return f"Mozilla/5.0 (PlayStation 5 8.20) {WK_APPLE} Version/15.4 Safari/605.1.15"
        # Epiphany (GNOME Web) on Linux / BSD / ChromeOS
        return f"Mozilla/5.0 ({plat}) {WK_APPLE} Version/17.0 Safari/605.1.15 Epiphany/46.0"
    if browser == "firefox":
        if ios:
            return f"Mozilla/5.0 ({plat}) {WK_APPLE} FxiOS/{fv} Mobile/15E148 Safari/605.1.15"
        if os_ == "android":
            return f"Mozilla/5.0 (Android 14; Mobile; rv:{fv}) Gecko/{fv} Firefox/{fv}"
        if os_ == "other":
            return rng.choice([f"Mozilla/5.0 (X11; OpenBSD amd64; rv:{fv}) Gecko/20100101 Firefox/{fv}",
                               "Mozilla/5.0 (Mobile; rv:48.0) Gecko/48.0 Firefox/48.0 KAIOS/2.5.4"])
        return f"Mozilla/5.0 ({plat}; rv:{fv}) Gecko/20100101 Firefox/{fv}"
    if browser == "edge":
        if ios:
            return f"Mozilla/5.0 ({plat}) {WK_APPLE} Version/17.0 EdgiOS/124.2478.71 Mobile/15E148 Safari/605.1.15"
        if os_ == "android":
            return _chromium(plat, os_, cv, "EdgA/124.0.2478.64")
        return _chromium(plat, os_, cv, f"Edg/{cv[:3]}.0.2478.80")
    if browser == "opera":
        if ios:  # Opera Mini
            return "Opera/9.80 (iPhone; Opera Mini/8.0.0/37.5774; U; en) Presto/2.12.423 Version/12.16"
        return _chromium(plat, os_, cv, "OPR/110.0.0.0")
    if browser == "samsung":
        return _chromium(plat, os_, "115.0.0.0", mid="SamsungBrowser/25.0 ")
    if browser == "yandex":
        return _chromium(plat, os_, cv, mid="YaBrowser/24.4.0.0 ")
    if browser == "vivaldi":
        if ios:
            return f"Mozilla/5.0 ({plat}) {WK_APPLE} Version/17.5 Mobile/15E148 Safari/604.1 Vivaldi/6.7"
        return _chromium(plat, os_, cv, "Vivaldi/6.7.3329.41")
    if browser == "silk":  # Amazon Fire tablets (Android based, no "Mobile")
        a = "Linux; Android 9; KFTRWI" if os_ == "android" else plat
        return f"Mozilla/5.0 ({a}) {WK} Silk/124.2.3 like Chrome/124.0.6367.179 Safari/537.36"
    if browser == "ucbrowser":
        if os_ == "android":
            return ("Mozilla/5.0 (Linux; U; Android 10; en-US; RMX2020 Build/QP1A.190711.020) " + WK +
                    " Version/4.0 Chrome/78.0.3904.108 UCBrowser/13.4.0.1306 Mobile Safari/537.36")
        return _chromium(plat, os_, "78.0.3904.108", "UCBrowser/7.0.185.1002")
    if browser == "ie":
        if os_ == "windows":
            return "Mozilla/5.0 (Windows NT 10.0; WOW64; Trident/7.0; rv:11.0) like Gecko"
        if os_ == "other":  # IE Mobile on Windows CE
            return "Mozilla/4.0 (compatible; MSIE 6.0; Windows CE; IEMobile 7.11)"
        return f"Mozilla/5.0 (compatible; MSIE 10.0; {plat}; Trident/6.0)"
    if browser == "facebook_app":
        if ios:
            return (f"Mozilla/5.0 ({plat}) {WK_APPLE} Mobile/15E148 [FBAN/FBIOS;FBAV/466.0.0.40.107;"
                    "FBBV/600000000;FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS;FBSV/17.5;FBSS/3;FBLC/en_US;FBOP/5]")
        return _chromium(plat, os_, cv, "[FB_IAB/FB4A;FBAV/466.0.0.39.109;]")
    if browser == "other":
        if ios:  # an in-app WKWebView: no Safari/ token
            return f"Mozilla/5.0 ({plat}) {WK_APPLE} Mobile/15E148"
        if os_ == "android":
            return "Dalvik/2.1.0 (Linux; U; Android 13; SM-A536B Build/TP1A.220624.014)"
        if os_ in ("windows", "macos"):
            return f"Mozilla/5.0 ({plat}; rv:128.0) Gecko/20100101 Thunderbird/128.0"
        if os_ == "other":
            return ("Mozilla/5.0 (Nintendo Switch; WifiWebApplet) AppleWebKit/606.4 (KHTML, like Gecko) "
                    "NF/6.0.2.21.3 NintendoBrowser/5.1.0.32061")
        return f"Mozilla/5.0 ({plat}) KHTML/5.27.11 (like Gecko) Konqueror/5.27"
    raise ValueError(browser)


# ---------------------------------------------------------------------------------------------------
# Traffic channels: landing query + referrer (src/event/channel.rs maps them back)

REFERRERS = {
    "direct": [None],
    "organic_google": ["https://www.google.com/", "https://www.google.co.uk/", "https://www.google.de/"],
    "organic_bing": ["https://www.bing.com/"],
    "organic_other": ["https://duckduckgo.com/", "https://search.yahoo.com/", "https://yandex.ru/",
                      "https://www.baidu.com/", "https://www.ecosia.org/"],
    "social_facebook": ["https://l.facebook.com/", "https://m.facebook.com/", "https://www.facebook.com/"],
    "social_linkedin": ["https://www.linkedin.com/", "https://lnkd.in/"],
    "social_twitter": ["https://t.co/", "https://x.com/"],
    "social_other": ["https://www.reddit.com/", "https://www.instagram.com/", "https://www.pinterest.com/",
                     "https://www.tiktok.com/"],
    "video": ["https://www.youtube.com/", "https://vimeo.com/"],
    "referral": ["https://news.example.org/2015/best-gifts", "https://blog.example.net/reviews/shops",
                 "https://forum.example.com/t/where-to-buy"],
    "ai_assistant": ["https://chatgpt.com/", "https://www.perplexity.ai/", "https://gemini.google.com/",
                     "https://copilot.microsoft.com/"],
}
CAMPAIGNS = {  # channel -> [(utm_medium, utm_source, referrer)]
    "paid_search": [("cpc", "google", "https://www.google.com/"), ("cpc", "bing", "https://www.bing.com/"),
                    ("ppc", "google", "https://www.google.com/")],
    "paid_social": [("paid_social", "facebook", "https://l.facebook.com/"),
                    ("paidsocial", "instagram", "https://www.instagram.com/")],
    "display": [("display", "gdn", None), ("banner", "adnetwork", None), ("cpm", "programmatic", None)],
    "email": [("email", "newsletter", None), ("newsletter", "weekly", None)],
    "affiliate": [("affiliate", "couponsite", "https://deals.example.com/")],
    "sms": [("sms", "promo", None)],
    "push": [("push", "webpush", None)],
    "partner": [("partner", "marketplace", "https://partner.example.net/")],
    "other_campaign": [("qrcode", "flyer", None), ("print", "catalogue", None), ("podcast", "sponsor", None)],
}


def landing_for(channel: str, rng: random.Random) -> tuple[str, str | None]:
    """Query string (with leading '?', or '') and referrer of a landing page of that channel."""
    if channel in CAMPAIGNS:
        medium, source, ref = rng.choice(CAMPAIGNS[channel])
        return f"?utm_source={source}&utm_medium={medium}&utm_campaign=c{rng.randint(1, 40)}", ref
    return "", rng.choice(REFERRERS[channel])


# ---------------------------------------------------------------------------------------------------
# Rows

def short32(s: str) -> float:
    """The shortest decimal that rounds to float32(s), as an f64: parses exactly in any JSON reader."""
    return float(str(np.float32(float(s))))


def read_rows(path: str) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def split_engaged(total_s: str, n: int, rng: random.Random) -> list[float]:
    """n per-page engaged_ms floats whose sequential f64 sum / 1000, as float32, equals float32(total_s).

    Values have at most 6 decimals (<= 15 significant digits), so every JSON parser reads them exactly.
    Some pages get 0 (GA cannot time every page), as in the dataset.
    """
    if n == 0:
        return []
    target = f32(float(total_s))
    if float(total_s) == 0.0:
        return [0.0] * n
    total_ms = float(total_s) * 1000.0
    zero = [n > 1 and rng.random() < 0.12 for _ in range(n)]
    if all(zero):
        zero[rng.randrange(n)] = False
    w = [0.0 if z else rng.expovariate(1.0) + 0.05 for z in zero]
    wsum = sum(w)
    resid = max(range(n), key=lambda i: w[i])
    pieces = [round(total_ms * wi / wsum, 6) for wi in w]
    pieces[resid] = 0.0
    pieces[resid] = round(total_ms - math.fsum(pieces), 6)
    for k in range(200):
        s = 0.0
        for p in pieces:
            s += p
        got = f32(s / 1000.0)
        if got == target and pieces[resid] >= 0.0:
            return pieces
        step = 1e-6 * (1 + k // 20)
        pieces[resid] = round(pieces[resid] + (step if got < target else -step), 6)
    raise AssertionError(f"cannot split {total_s} s into {n} pages")


class Writer:
    """Builds the NDJSON lines of one visitor."""

    def __init__(self, vid: str):
        self.vid = vid
        self.n = 0
        self.lines: list[str] = []

    def _head(self, kind: str, ts: int) -> str:
        s = f'{{"id":"{self.vid}-{self.n}","type":"{kind}","ts":{ts},"visitor_id":"{self.vid}"'
        self.n += 1
        return s

    def page(self, ts, path, query, referrer, ua_json, persistent=True):
        s = self._head("page", ts) + f',"url":"{HOST}{path}{query}","path":"{path}"'
        if referrer:
            s += f',"referrer":"{referrer}"'
        s += f',"ua":{ua_json},"tz_offset":0'
        if not persistent:
            s += ',"props":{"id_persistent":false}'
        self.lines.append(s + "}")

    def page_end(self, ts, path, engaged_ms):
        self.lines.append(self._head("page_end", ts) + f',"path":"{path}","engaged_ms":{engaged_ms!r}}}')

    def scroll(self, ts, path, depth):
        self.lines.append(self._head("scroll", ts) + f',"path":"{path}","props":{{"depth":{depth}}}}}')

    def click(self, ts, path, cta):
        self.lines.append(self._head("click", ts) + f',"path":"{path}","props":{{"cta":"{cta}"}}}}')


HOURS = list(range(7, 23))
HOUR_W = [2, 4, 6, 7, 7, 7, 7, 7, 7, 6, 6, 7, 8, 8, 6, 4]


def expand(rows: list[dict]):
    """Yields (row index, NDJSON lines) and fills the site tables."""
    candidates = date_candidates()
    inv = {k: {c: n for n, c in v.items()} for k, v in CODES.items()}
    triples: dict[tuple, int] = {}
    stats_pages: dict[str, list[float]] = {}
    ua_cache: dict[str, str] = {}
    out = []
    for r, row in enumerate(rows):
        rng = random.Random(f"{SEED}:{r}")
        vid = f"shoppers-{r}"
        w = Writer(vid)
        # calendar
        month = MONTHS[row["Month"]]
        weekend = row["Weekend"] == "TRUE"
        key = (month, f32(float(row["SpecialDay"])), weekend)
        day = rng.choice(candidates[key])
        hour = rng.choices(HOURS, HOUR_W)[0]
        start = epoch_ms(day) + hour * 3_600_000 + rng.randrange(3_600_000)
        # agent and channel
        os_ = inv["os"][int(row["OperatingSystems"])]
        br = inv["browser"][int(row["Browser"])]
        ua = make_ua(os_, br, rng)
        ua_json = ua_cache.setdefault(ua, json.dumps(ua))
        channel = inv["channel"][int(row["TrafficType"])]
        query, referrer = landing_for(channel, rng)
        vtype = row["VisitorType"]
        # page statistics of the row: one path per category per distinct triple
        triple = tuple(short32(row[c]) for _, c in STAT_COLUMNS)
        k = triples.setdefault(triple, len(triples))
        counts = [int(row[c]) for _, c, _ in CATEGORIES]
        seq = [i for i, c in enumerate(counts) for _ in range(c)]
        rng.shuffle(seq)
        paths = [f"{prefix}/t{k}" for _, _, prefix in CATEGORIES]
        if not seq:
            seq = [3]
            paths.append(f"{LANDING_PREFIX}/t{k}")
        for i in set(seq):
            stats_pages.setdefault(paths[i], list(triple))
        engaged = [split_engaged(row[c + "_Duration"], n, rng) for (_, c, _), n in zip(CATEGORIES, counts)]
        engaged.append([0.0])
        # a returning visitor's earlier, direct session on the home page
        if vtype == "Returning_Visitor":
            t = start - rng.randint(1, 20) * 86_400_000 + rng.randint(-3, 3) * 3_600_000
            for j in range(rng.choice((1, 1, 2))):
                ms = round(rng.uniform(3_000, 90_000), 3)
                w.page(t, "/", "", None, ua_json)
                t_end = t + math.ceil(ms) + rng.randrange(1500)
                w.page_end(t_end, "/", ms)
                t = t_end + 200 + rng.randrange(2000)
        # the row's session
        persistent = vtype != "Other"
        used = [0, 0, 0, 0]
        t = start
        last = len(seq) - 1
        for i, cat in enumerate(seq):
            path = paths[cat]
            ms = engaged[cat][used[cat]]
            used[cat] += 1
            if i == 0:
                w.page(t, path, query, referrer, ua_json, persistent)
            else:
                w.page(t, path, "", None, ua_json, persistent)
            if ms > 0.0:
                if rng.random() < 0.07:
                    w.scroll(t + int(min(ms * rng.uniform(0.2, 0.9), 600_000)), path,
                             rng.choice((25, 50, 75, 100)))
                if cat == 2 and rng.random() < 0.015:
                    w.click(t + int(min(ms * 0.95, 900_000)), path, "add_to_cart")
            if ms == 0.0 and i == last:
                break  # the last page's end beacon never arrived: GA cannot time it either
            t_end = t + math.ceil(ms) + rng.randrange(1500)
            w.page_end(t_end, path, ms)
            t = t_end + 80 + rng.randrange(2500)
        out.append((r, w.lines))
    tables = {
        "timezone_offset_minutes": 0,
        "session_timeout_minutes": SESSION_TIMEOUT_MS // 60_000,
        "page_rules": site_rules(),
        "default_tags": ["other"],
        "page_stats": {"columns": [n for n, _ in STAT_COLUMNS], "pages": stats_pages},
        "special_days": SPECIAL_DAYS,
        "special_day_peak_days_before": SPECIAL_PEAK,
        "special_day_width_days": SPECIAL_WIDTH,
    }
    return out, tables


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data/online_shoppers/online_shoppers_intention.csv")
    ap.add_argument("--out", required=True, help="NDJSON events")
    ap.add_argument("--out-tables", required=True, help="site tables JSON (card.json `site` object)")
    ap.add_argument("--codes", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "codes.json"),
                    help="also write the family/channel -> dataset code table here ('' to skip)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows = read_rows(args.data)
    out, tables = expand(rows)
    with open(args.out, "w", newline="\n") as f:
        for _, lines in out:
            f.write("\n".join(lines))
            f.write("\n")
    with open(args.out_tables, "w", newline="\n") as f:
        json.dump(tables, f, separators=(",", ":"))
        f.write("\n")
    if args.codes:
        with open(args.codes, "w", newline="\n") as f:
            json.dump(CODES, f, indent=2)
            f.write("\n")
    t1 = time.perf_counter()
    msg = f"wrote {sum(len(l) for _, l in out)} events for {len(out)} visitors in {t1 - t0:.1f} s"
    print(msg + f" ({os.path.getsize(args.out) / 1e6:.1f} MB); {len(tables['page_stats']['pages'])} stat pages",
          file=sys.stderr)


if __name__ == "__main__":
    main()
