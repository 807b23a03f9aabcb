//! Small display helpers for people: CPU and memory quantities, ages, UTC timestamps and
//! durations.

const KI: u64 = 1 << 10;
const MI: u64 = 1 << 20;
const GI: u64 = 1 << 30;
const TI: u64 = 1 << 40;

/// Millicores as cores: `1500` -> `"1.5"`, `8000` -> `"8"`, `250` -> `"0.25"`.
pub fn cpu(millis: u64) -> String {
    let whole = millis / 1000;
    let frac = millis % 1000;
    if frac == 0 {
        whole.to_string()
    } else {
        let frac = format!("{frac:03}");
        format!("{whole}.{}", frac.trim_end_matches('0'))
    }
}

/// Bytes in the largest binary unit that keeps at least one whole unit, with at most one
/// decimal: `536870912` -> `"512Mi"`, `8589934592` -> `"8Gi"`, `1610612736` -> `"1.5Gi"`.
pub fn memory(bytes: u64) -> String {
    let (unit, size) = match bytes {
        b if b >= TI => ("Ti", TI),
        b if b >= GI => ("Gi", GI),
        b if b >= MI => ("Mi", MI),
        b if b >= KI => ("Ki", KI),
        _ => return bytes.to_string(),
    };
    // Tenths, rounded half up, in integers so nothing is lost to floating point.
    let tenths = (u128::from(bytes) * 10 + u128::from(size) / 2) / u128::from(size);
    let (whole, tenth) = (tenths / 10, tenths % 10);
    if tenth == 0 {
        format!("{whole}{unit}")
    } else {
        format!("{whole}.{tenth}{unit}")
    }
}

/// `allocated/capacity`, e.g. `"1.5/8"` or `"512Mi/7.8Gi"`.
pub fn ratio(allocated: String, capacity: String) -> String {
    format!("{allocated}/{capacity}")
}

/// A duration the way `docker ps` and `kubectl get` show ages: `"45s"`, `"12m"`, `"3h"`, `"5d"`.
pub fn age(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// Parses an RFC 3339 timestamp as Docker writes it (`2024-05-01T10:20:30.123456789Z`, or with
/// a `+hh:mm` offset) into unix seconds. Docker's zero time (`0001-01-01T00:00:00Z`, "never
/// started") and anything unreadable give `None`.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || bytes[13] != b':' {
        return None;
    }
    if !matches!(bytes[10], b'T' | b't' | b' ') || bytes[16] != b':' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let mut rest = text.get(19..)?;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = rest.get(1..)?.split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60)
        }
    };
    let secs =
        days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset;
    u64::try_from(secs).ok().filter(|s| *s > 0)
}

/// Unix seconds as an RFC 3339 UTC timestamp to the second: `2024-05-01T10:20:30Z`.
pub fn utc(seconds: u64) -> String {
    let days = i64::try_from(seconds / 86400).unwrap_or(i64::MAX / 2);
    let rest = seconds % 86400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// How long something took, to two units: `"850ms"`, `"5.2s"`, `"1m5s"`, `"2h3m"`, `"3d4h"`.
pub fn duration(millis: u64) -> String {
    let s = millis / 1000;
    match millis {
        m if m < 1000 => format!("{m}ms"),
        m if m < 10_000 => format!("{}.{}s", m / 1000, m % 1000 / 100),
        _ if s < 60 => format!("{s}s"),
        _ if s < 3600 => format!("{}m{}s", s / 60, s % 60),
        _ if s < 86400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86400, s % 86400 / 3600),
    }
}

/// The date of a day since 1970-01-01 (Howard Hinnant's algorithm, the inverse of
/// `days_from_civil`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_shows_cores_without_trailing_zeros() {
        assert_eq!(cpu(0), "0");
        assert_eq!(cpu(1500), "1.5");
        assert_eq!(cpu(8000), "8");
        assert_eq!(cpu(250), "0.25");
        assert_eq!(cpu(1), "0.001");
        assert_eq!(cpu(12_345), "12.345");
    }

    #[test]
    fn memory_picks_a_binary_unit() {
        assert_eq!(memory(0), "0");
        assert_eq!(memory(1000), "1000");
        assert_eq!(memory(1024), "1Ki");
        assert_eq!(memory(256 * MI), "256Mi");
        assert_eq!(memory(8 * GI), "8Gi");
        assert_eq!(memory(GI + GI / 2), "1.5Gi");
        // 7.8Gi: a typical "8G" machine after the kernel took its share.
        assert_eq!(memory(8_375_000_000), "7.8Gi");
        assert_eq!(memory(1023 * MI), "1023Mi");
        assert_eq!(memory(2 * TI), "2Ti");
        assert_eq!(memory(u64::MAX), "16777216Ti");
    }

    #[test]
    fn ratio_and_age() {
        assert_eq!(ratio(cpu(1500), cpu(8000)), "1.5/8");
        assert_eq!(age(5), "5s");
        assert_eq!(age(125), "2m");
        assert_eq!(age(3 * 3600), "3h");
        assert_eq!(age(47 * 3600), "47h");
        assert_eq!(age(5 * 86400 + 7), "5d");
    }

    #[test]
    fn utc_timestamps_and_durations() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_714_558_830), "2024-05-01T10:20:30Z");
        assert_eq!(utc(951_868_800), "2000-03-01T00:00:00Z");
        assert_eq!(utc(951_868_799), "2000-02-29T23:59:59Z");
        for secs in [1, 86_399, 1_714_558_830, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&utc(secs)), Some(secs), "{secs}");
        }
        assert_eq!(duration(850), "850ms");
        assert_eq!(duration(5_250), "5.2s");
        assert_eq!(duration(42_000), "42s");
        assert_eq!(duration(65_500), "1m5s");
        assert_eq!(duration((2 * 3600 + 3 * 60 + 4) * 1000), "2h3m");
        assert_eq!(duration((3 * 86400 + 4 * 3600) * 1000), "3d4h");
    }

    #[test]
    fn rfc3339_as_docker_writes_it() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01Z"), Some(1));
        assert_eq!(
            parse_rfc3339("2024-05-01T10:20:30.123456789Z"),
            Some(1_714_558_830)
        );
        assert_eq!(
            parse_rfc3339("2024-05-01T12:20:30+02:00"),
            Some(1_714_558_830)
        );
        assert_eq!(parse_rfc3339("2000-03-01T00:00:00Z"), Some(951_868_800));
        assert_eq!(
            parse_rfc3339("0001-01-01T00:00:00Z"),
            None,
            "docker's zero time"
        );
        for bad in [
            "",
            "yesterday",
            "2024-05-01",
            "2024-13-01T00:00:00Z",
            "2024-05-01T10:20:30",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
