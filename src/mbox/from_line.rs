//! The `From_` line that starts every message of an mbox: `From <sender>
//! <date>`. Parsing accepts what Dovecot's `mbox_from_parse` accepts (a
//! line Dovecot rejects is body text, not a separator, and must be for us
//! too); the date gives the message's INTERNALDATE.
//!
//! Dovecot writes the date in local time without a zone, which makes the
//! INTERNALDATE depend on the reader's TZ and is ambiguous once a year. We
//! write UTC followed by ` +0000`, which Dovecot (and every reader we know)
//! parses as an exact time: `From MAILER-DAEMON  Thu Nov 29 22:33:52 2001 +0000`.

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// What a `From_` line says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FromLine {
    /// The envelope sender, as written (may be any bytes but space).
    pub sender: Vec<u8>,
    /// Seconds since the epoch.
    pub time: i64,
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month 1-12, day, weekday 0=Sunday) of a day number.
fn civil_from_days(z: i64) -> (i64, u32, u32, usize) {
    let wd = (z + 4).rem_euclid(7) as usize;
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, wd)
}

/// The `From_` line we write for a message (with its newline).
pub fn format(sender: &[u8], time: i64) -> Vec<u8> {
    let days = time.div_euclid(86_400);
    let secs = time.rem_euclid(86_400);
    let (y, m, d, wd) = civil_from_days(days);
    let mut out = b"From ".to_vec();
    out.extend_from_slice(if sender.is_empty() {
        b"MAILER-DAEMON"
    } else {
        sender
    });
    out.extend_from_slice(
        format!(
            "  {} {} {:2} {:02}:{:02}:{:02} {:04} +0000\n",
            WEEKDAYS[wd],
            MONTHS[(m - 1) as usize],
            d,
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            y.clamp(0, 9999)
        )
        .as_bytes(),
    );
    out
}

/// A sender we can write: no spaces or line breaks (those would end the
/// field), else MAILER-DAEMON as Dovecot does for an empty one.
pub fn clean_sender(s: &[u8]) -> Vec<u8> {
    if s.is_empty() || s.iter().any(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n')) {
        b"MAILER-DAEMON".to_vec()
    } else {
        s.to_vec()
    }
}

fn month(b: &[u8]) -> Option<u32> {
    if b.len() < 4 || b[3] != b' ' {
        return None;
    }
    if let Some(i) = MONTHS
        .iter()
        .position(|m| m.as_bytes().eq_ignore_ascii_case(&b[..3]))
    {
        return Some(i as u32);
    }
    // Dovecot's hack for one odd mbox: "???" is January.
    (&b[..3] == b"???").then_some(0)
}

fn digits(b: &[u8], n: usize) -> Option<u32> {
    if b.len() < n || !b[..n].iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b[..n].iter().fold(0, |v, c| v * 10 + u32::from(c - b'0')))
}

/// Parses the rest of a `From_` line after `From ` (without the line
/// break). `None` when Dovecot would not take it as a separator.
pub fn parse(line: &[u8]) -> Option<FromLine> {
    if line.contains(&b'\n') {
        return None;
    }
    let mut p = 0usize;
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    // Sender; a quoted local part may contain spaces.
    if at(0) == b'"' {
        let mut esc = false;
        p = 1;
        while p < line.len() && (line[p] != b'"' || esc) {
            if line[p] == b'\r' {
                return None;
            }
            esc = line[p] == b'\\';
            p += 1;
        }
        p += 1;
    }
    while p < line.len() && line[p] != b' ' {
        if line[p] == b'\r' {
            return None;
        }
        p += 1;
    }
    let sender = line[..p.min(line.len())].to_vec();
    while p < line.len() && line[p] == b' ' {
        p += 1;
    }
    if p + 29 - 3 - 5 > line.len() {
        return None;
    }
    p += 4; // weekday
    let (mut year, mon, mut mday);
    let alt_stamp;
    match month(&line[p.min(line.len())..]) {
        Some(m) => {
            alt_stamp = false;
            mon = m;
            p += 4;
            if at(p) == b' ' {
                p += 1;
            }
            if at(p + 1) == b' ' {
                mday = digits(&line[p.min(line.len())..], 1)?;
                p += 2;
            } else {
                mday = digits(&line[p.min(line.len())..], 2)?;
                if at(p + 2) != b' ' {
                    return None;
                }
                p += 3;
            }
            year = 0;
        }
        None => {
            // "Thu, 9 Nov 2002 22:33:52"
            alt_stamp = true;
            p += 1;
            mday = digits(&line[p.min(line.len())..], 1)?;
            p += 1;
            if at(p).is_ascii_digit() {
                mday = mday * 10 + u32::from(at(p) - b'0');
                p += 1;
            }
            if at(p) != b' ' {
                return None;
            }
            p += 1;
            mon = month(&line[p.min(line.len())..])?;
            p += 4;
            year = digits(&line[p.min(line.len())..], 4)? as i64;
            p += 5;
        }
    }
    if mday == 0 {
        mday = 1;
    }
    if p + 5 > line.len() {
        return None;
    }
    let hour = digits(&line[p..], 2)?;
    if at(p + 2) != b':' {
        return None;
    }
    p += 3;
    let min = digits(&line[p..], 2)?;
    p += 2;
    let mut sec = 0;
    if p >= line.len() {
    } else if at(p) == b':' {
        if p + 3 > line.len() {
            return None;
        }
        sec = digits(&line[p + 1..], 2)?;
        p += 3;
        if !alt_stamp {
            if at(p) != b' ' {
                return None;
            }
            p += 1;
        }
    } else if !alt_stamp {
        if at(p) != b' ' {
            return None;
        }
        p += 1;
    }
    let mut tz: Option<i64> = None;
    if alt_stamp {
    } else if p + 4 <= line.len() && digits(&line[p..], 4).is_none() {
        // A named zone (or, as Dovecot reads it, a numeric one before the
        // year): skipped.
        while p < line.len() && line[p] != b' ' {
            if line[p] == b'\r' {
                return None;
            }
            p += 1;
        }
        if p + 5 > line.len() {
            return None;
        }
        p += 1;
    }
    if !alt_stamp {
        year = digits(&line[p.min(line.len())..], 4)? as i64;
        p += 4;
    }
    if p + 6 <= line.len() && at(p) == b' ' && matches!(at(p + 1), b'+' | b'-') {
        if let Some(v) = digits(&line[p + 2..], 4) {
            // Dovecot's arithmetic, minutes digits included as it does them.
            let d = |i: usize| i64::from(at(p + 2 + i) - b'0');
            let _ = v;
            let mut secs = d(0) * 36_000 + d(1) * 3_600 + d(2) * 10 + d(3);
            if at(p + 1) == b'-' {
                secs = -secs;
            }
            tz = Some(secs);
        }
    }
    if hour > 23 || min > 59 || sec > 60 || mday > 31 {
        // mktime would normalise these; so do we, like Dovecot.
    }
    let base = days_from_civil(year, mon + 1, 1) * 86_400
        + (i64::from(mday) - 1) * 86_400
        + i64::from(hour) * 3600
        + i64::from(min) * 60
        + i64::from(sec);
    let time = match tz {
        Some(off) => base - off,
        None => local_to_utc(year, mon, mday, hour, min, sec).unwrap_or(base),
    };
    Some(FromLine { sender, time })
}

/// mktime(3): a local wall-clock time to seconds since the epoch.
fn local_to_utc(year: i64, mon: u32, mday: u32, hour: u32, min: u32, sec: u32) -> Option<i64> {
    // SAFETY: an all-zero tm is valid; mktime only reads and normalises it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = (year - 1900) as i32;
    tm.tm_mon = mon as i32;
    tm.tm_mday = mday as i32;
    tm.tm_hour = hour as i32;
    tm.tm_min = min as i32;
    tm.tm_sec = sec as i32;
    tm.tm_isdst = -1;
    // SAFETY: tm is a valid, initialised struct.
    let t = unsafe { libc::mktime(&mut tm) };
    (t != -1).then_some(t as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Option<i64> {
        parse(s.as_bytes()).map(|f| f.time)
    }

    #[test]
    fn our_format_round_trips() {
        for t in [
            0i64,
            1_500_000_000,
            951_782_400,
            1_700_000_000,
            4_102_444_799,
        ] {
            let line = format(b"MAILER-DAEMON", t);
            assert!(line.starts_with(b"From MAILER-DAEMON  "));
            let rest = &line[5..line.len() - 1];
            assert_eq!(
                parse(rest).unwrap().time,
                t,
                "{}",
                String::from_utf8_lossy(&line)
            );
        }
        assert_eq!(
            format(b"a@b", 1_000_000_000),
            b"From a@b  Sun Sep  9 01:46:40 2001 +0000\n".to_vec()
        );
    }

    #[test]
    fn dovecot_variants() {
        let want = days_from_civil(2001, 11, 29) * 86_400 + 22 * 3600 + 33 * 60 + 52;
        assert_eq!(p("a@b Thu Nov 29 22:33:52 2001 +0000"), Some(want));
        assert_eq!(p("a@b Thu Nov 29 22:33:52 2001 +0100"), Some(want - 3600));
        assert_eq!(p("a@b  Thu Nov 29 22:33:52 2001 -0200"), Some(want + 7200));
        // Named zone before the year, no seconds.
        assert_eq!(p("a@b Thu Nov 29 22:33 UTC 2001 +0000"), Some(want - 52));
        assert_eq!(p("\"x y\"@b Thu Nov 29 22:33:52 2001 +0000"), Some(want));
        assert!(p("a Thu, 29 Nov 2001 22:33:52 +0000").is_some());
        assert!(p("MAILER-DAEMON  Thu Jan  1 00:00:00 1970").is_some());
        assert_eq!(parse(b"x Thu Nov 29 22:33:52 2001").unwrap().sender, b"x");
    }

    #[test]
    fn not_separators() {
        for s in [
            "",
            "me",
            "me today",
            "the shop. Thanks for your order",
            "a@b Thu Nov 29 22:33:52",
            "a@b Thu Xyz 29 22:33:52 2001",
            "a@b Thu Nov 29 2233:52 2001",
        ] {
            assert_eq!(p(s), None, "{s:?}");
        }
    }

    #[test]
    fn senders_are_cleaned() {
        assert_eq!(clean_sender(b""), b"MAILER-DAEMON");
        assert_eq!(clean_sender(b"a b"), b"MAILER-DAEMON");
        assert_eq!(clean_sender(b"a@b"), b"a@b");
    }
}
